"""Distil in the image runner: its labels are its object (`Method.labels_are_object`: the
object is `labels == 1`, cleaned, not the object step's), its probability map is written
beside it, and a student fitted in one run folder segments new images in another without
fitting (`RunOptions.fitted_from`, `experiments.segment --fitted_from`), refused with one
line when it was fitted with other settings."""

from __future__ import annotations

import dataclasses
import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from sgscn_jax import registry
from sgscn_jax.data.datasets import Record, list_dataset
from sgscn_jax.distil import network
from sgscn_jax.distil.config import QUICK
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import case_files, fitting, run_dataset, scoring
from sgscn_jax.running.folder import RunFolderError
from sgscn_jax.running.options import RunOptions


def test_labels_object_takes_label_one_cleaned_by_profile():
  labels = np.zeros((12, 12), np.int32)
  labels[1:6, 1:6] = 1
  labels[3, 3] = 0                       # a hole
  labels[8:11, 8:10] = 1                 # a second, smaller piece
  labels[0, 11] = 2                      # another label is never object
  record = Record("c", np.zeros((12, 12, 3), np.float32), None, {})
  lesion = scoring.labels_object(labels, record, ObjectConfig())
  assert lesion.mask.sum() == 25 and lesion.mask[3, 3] and not lesion.mask[8:, 8:].any()
  assert "labels == 1" in lesion.reason
  lungs = scoring.labels_object(labels, record, ObjectConfig(profile="lungs"))
  assert lungs.mask.sum() == 25 + 6
  vessels = scoring.labels_object(labels, record, ObjectConfig(profile="vessels"))
  np.testing.assert_array_equal(vessels.mask, labels == 1)
  assert lesion.config_tag == scoring.object_tag(ObjectConfig(), True) != scoring.object_tag(
      ObjectConfig())
  row = {"object_version": 3, "object_config": scoring.object_tag(ObjectConfig())}
  options = RunOptions(out_dir="x", objects=ObjectConfig())
  row["object_version"] = case_files.objects.VERSION
  assert not case_files.needs_update(row, options)
  assert case_files.needs_update(row, options, labels_are_object=True)   # upgraded on resume


def _fitted_folder(folder, config, channels=3):
  """A run folder holding a (random) fitted student for `config`, as `load_or_fit` keeps it."""
  state = {"params": network.init(jax.random.key(0), channels, config.width, config.depth),
           "mean": np.full(channels, 0.5, np.float32), "std": np.full(channels, 0.2, np.float32),
           "loss": np.zeros((config.steps, 3), np.float32)}
  npz, meta = fitting.state_paths(folder, "distil")
  npz.parent.mkdir(parents=True)
  fitting.save_state(npz, state)
  meta.write_text(json.dumps(fitting.fit_settings("distil", config, 0, ["a", "b"],
                                                  [(32, 32, 3)] * 2, None)))


def test_a_fitted_student_segments_new_images_without_fitting(tmp_path, monkeypatch):
  method = registry.get_method("distil")
  assert method.labels_are_object
  _fitted_folder(tmp_path / "fit", QUICK)
  monkeypatch.setattr(fitting, "load_or_fit", lambda *a, **k: pytest.fail("fitted again"))
  cases, load = list_dataset("demo", None, demo_n=2, demo_size=32, seed=0)
  options = RunOptions(out_dir=str(tmp_path / "new"), objects=ObjectConfig(polarity="dark"),
                       method_name="distil", fitted_from=str(tmp_path / "fit"))
  result = run_dataset(cases, load, QUICK, options, method)
  assert result.summary["finished"] == 2 and not result.failures
  out = tmp_path / "new"
  for case in cases:
    row = json.loads((out / "cases" / f"{case.case_id}.json").read_text())
    assert "labels == 1" in row["object_reason"]
    labels = np.asarray(iio.imread(out / "labels" / f"{case.case_id}.png"))
    expected = scoring.labels_object(labels, load(case), options.objects).mask
    np.testing.assert_array_equal(iio.imread(out / "objects" / f"{case.case_id}.png") > 0,
                                  expected)
    p = np.asarray(iio.imread(out / "probability" / f"{case.case_id}.png"))
    assert p.shape == labels.shape and p.dtype == np.uint8 and p.max() > 0
  saved = fitting.fit_info(out, "distil")
  assert saved["fitted_from"] == str(tmp_path / "fit")
  # inference settings may differ; a fit setting may not (one line, before any case)
  other = dataclasses.replace(QUICK, tta="flips")
  fitting.load_fitted(method, other, tmp_path / "fit")
  with pytest.raises(RunFolderError, match=r"steps 4 -> 5") as refused:
    run_dataset(cases, load, dataclasses.replace(QUICK, steps=5),
                dataclasses.replace(options, out_dir=str(tmp_path / "refused")), method)
  assert "\n" not in str(refused.value)
  with pytest.raises(RunFolderError, match="no fitted distil state"):
    fitting.load_fitted(method, QUICK, tmp_path / "new" / "labels")


def test_the_benchmark_fits_infers_and_writes_its_json(tmp_path):
  """`experiments.benchmark --method distil` on two synthetic images with the quick student:
  the report on stdout and in --json_out, the goals as booleans (no speed is asserted)."""
  import os
  import subprocess
  import sys
  from pathlib import Path
  root = Path(__file__).resolve().parents[1]
  out = tmp_path / "distil.json"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.benchmark", "--method=distil", "--distil_quick",
       f"--distil_data_dir={tmp_path / 'absent'}", "--distil_images=2", "--distil_batch=2",
       "--distil_repeats=1", "--distil_sgscn_images=0", f"--json_out={out}"],
      cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report == json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["method"] == "distil" and report["data"] == "synthetic"
  assert report["images"] == 2 and report["steps"] == QUICK.steps
  assert report["fit_seconds"] > 0 and set(report["infer_ms_per_image"]) == {"none", "flips"}
  assert report["sgscn_seconds_per_image"] is None and report["cpu"]
  assert isinstance(report["infer_goal_met"], bool) and isinstance(report["fit_goal_met"], bool)


def test_the_fit_is_told_each_images_valid_region(tmp_path):
  """A data set with a valid region (ultrasound's scan region, DRIVE's field of view): the
  fit's context carries it at the working shape, for the teacher's object step."""
  from sgscn_jax.data.datasets import Case
  from sgscn_jax.running import inputs
  valid = np.zeros((40, 40), bool)
  valid[5:35, 5:35] = True
  cases = [Case("a", "a.png", None, {}), Case("b", "b.png", None, {})]
  load = lambda c: Record(c.case_id, np.full((40, 40, 3), 0.5, np.float32), None,
                          {"valid": valid if c.case_id == "a" else None})
  options = RunOptions(out_dir=str(tmp_path), size=20, bucket_multiple=4)
  ids, works, valids = inputs.fit_images(cases, load, options)
  assert ids == ["a", "b"] and works[0].shape == (20, 20, 3) and valids[1] is None
  np.testing.assert_array_equal(valids[0], valid[1::2, 1::2])   # nearest: pixel centres
  seen = []
  method = registry.Method(name="fit_probe", title="probe", core=None, default_config=QUICK,
                           quick_config=QUICK, fit=lambda images, config, key, context=None:
                           seen.append(context) or {"x": np.zeros(1)})
  fitting.load_or_fit(method, QUICK, lambda: (ids, works, valids), tmp_path, 0)
  assert seen[0].ids == ("a", "b") and seen[0].valid[0] is valids[0]
