"""Data-set runs end to end: outputs, resumption, failures, the command line."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from conftest import write_lesion_folder

from sgscn_jax import Config, get_method
from sgscn_jax.running import images as image_runs
from sgscn_jax.running import results
from sgscn_jax.data.datasets import folder

ROOT = Path(__file__).resolve().parents[1]
TINY = Config(n_channels=8, iterations=3, early_stop=False)


def _run(cases, out, **kw):
  options = image_runs.RunOptions(out_dir=str(out), batch_size=2, montage_cases=2, **kw)
  return image_runs.run_dataset(cases, folder.load_case, TINY, options)


def test_run_writes_every_output(tmp_path):
  cases = write_lesion_folder(tmp_path / "data")
  result = _run(cases, tmp_path / "out")
  out = tmp_path / "out"
  assert not result.failures
  for name in ("results.csv", "summary.json", "summary.md", "montage.png", "run.json"):
    assert (out / name).is_file(), name
  for c in cases:
    labels = iio.imread(out / "labels" / f"{c.case_id}.png")
    assert labels.shape == (24, 32)
    assert iio.imread(out / "overlays" / f"{c.case_id}.png").shape == (24, 32, 3)
    assert (out / "history" / f"{c.case_id}.csv").read_text().count("\n") == 1 + 3
  summary = json.loads((out / "summary.json").read_text())
  assert summary["finished"] == 3 and summary["failed"] == 0
  assert 0 <= summary["metrics"]["largest_overlap.dice"]["mean"] <= 1
  assert "central.dice" in summary["metrics"]
  row = result.rows[0]
  assert row["iterations"] == 3 and row["work_height"] == 32 and row["height"] == 24
  assert not list(out.rglob(".*.tmp"))


def test_resumed_run_gives_the_same_summary(tmp_path):
  cases = write_lesion_folder(tmp_path / "data")
  _run(cases, tmp_path / "whole")
  _run(cases[:1], tmp_path / "parts")  # as if interrupted after the first case
  again = _run(cases, tmp_path / "parts")
  assert len(again.rows) == 3
  a = json.loads((tmp_path / "whole" / "summary.json").read_text())
  b = json.loads((tmp_path / "parts" / "summary.json").read_text())
  for summary in (a, b):
    summary["metrics"].pop("seconds", None)
    summary.pop("seconds_per_case")
  assert a == b
  whole = (tmp_path / "whole" / "results.csv").read_text().splitlines()
  parts = (tmp_path / "parts" / "results.csv").read_text().splitlines()
  header = whole[0].split(",")
  keep = [i for i, h in enumerate(header) if h != "seconds"]
  pick = lambda lines: [[line.split(",")[i] for i in keep] for line in lines]
  assert pick(whole) == pick(parts)


def test_a_bad_file_is_recorded_and_the_run_goes_on(tmp_path):
  cases = write_lesion_folder(tmp_path / "data")
  (tmp_path / "data" / "images" / "case1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  result = _run(cases, tmp_path / "out")
  assert [f["case_id"] for f in result.failures] == ["case1"]
  assert "case1.png" in result.failures[0]["reason"]
  text = (tmp_path / "out" / "failures.csv").read_text()
  assert "case1" in text
  assert sorted(r["case_id"] for r in result.rows) == ["case0", "case2"]


def test_case_keys_depend_on_id_not_on_batch(tmp_path):
  cases = write_lesion_folder(tmp_path / "data")
  a = _run(cases, tmp_path / "a")
  b = image_runs.run_dataset(cases, folder.load_case, TINY,
                           image_runs.RunOptions(out_dir=str(tmp_path / "b"), batch_size=1))
  for case in cases:  # same key, same program per image: the same label map
    la = iio.imread(tmp_path / "a" / "labels" / f"{case.case_id}.png")
    lb = iio.imread(tmp_path / "b" / "labels" / f"{case.case_id}.png")
    np.testing.assert_array_equal(la, lb)
  assert [r["largest_overlap.dice"] for r in a.rows] == [r["largest_overlap.dice"] for r in b.rows]


def test_standardise_changes_only_what_the_method_sees(tmp_path):
  cases = write_lesion_folder(tmp_path / "data", n=2)
  seen = []
  sgscn = get_method("sgscn")

  class Spy:   # SGSCN's entry points, recording what segment_batch is given
    def segment_batch(self, keys, images, config, **kwargs):
      seen.append(np.asarray(images))
      return sgscn.entry_points().segment_batch(keys, images, config, **kwargs)

  method = dataclasses.replace(sgscn, make_entry_points=lambda compiler_options: Spy())
  options = image_runs.RunOptions(out_dir=str(tmp_path / "s"), batch_size=2, standardise=True)
  result = image_runs.run_dataset(cases, folder.load_case, TINY, options, method)
  (images,) = seen
  for image in images:   # each image on its own: zero mean, unit variance per channel
    np.testing.assert_allclose(image.mean(axis=(0, 1)), 0.0, atol=1e-5)
    np.testing.assert_allclose(image.std(axis=(0, 1)), 1.0, atol=1e-4)
  assert [r["case_id"] for r in result.rows] == ["case0", "case1"]
  assert json.loads((tmp_path / "s" / "run.json").read_text())["options"]["standardise"] is True


def _cli(*args, cwd):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, "-m", "experiments.segment", *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=600)


def test_command_line_on_two_tiny_images(tmp_path):
  write_lesion_folder(tmp_path / "data", n=2)
  out = tmp_path / "out"
  proc = _cli("--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
              f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", "--iterations=2",
              "--n_channels=8", "--size=native", cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "dice" in proc.stdout
  assert len(list((out / "cases").glob("*.json"))) == 2
  run = json.loads((out / "run.json").read_text())
  assert run["config"]["iterations"] == 2 and "--iterations=2" in run["argv"]


def test_command_line_demo_and_bad_folder(tmp_path):
  proc = _cli("--demo_n=2", "--demo_size=24", "--iterations=2", "--n_channels=8",
              f"--out_dir={tmp_path / 'demo'}", cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert len(list((tmp_path / "demo" / "overlays").glob("*.png"))) == 2
  proc = _cli("--dataset=ph2", f"--data_dir={tmp_path / 'nowhere'}", cwd=ROOT)
  assert proc.returncode == 2 and "nowhere" in proc.stderr


def test_command_line_runs_a_baseline_method(tmp_path):
  write_lesion_folder(tmp_path / "data", n=2)
  out = tmp_path / "out"
  proc = _cli("--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
              f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", "--method=kmeans",
              "--k=2", "--size=native", cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.loads((out / "summary.json").read_text())
  assert summary["method"] == "kmeans" and summary["config"]["k"] == 2
  rows = [json.loads(p.read_text()) for p in (out / "cases").glob("*.json")]
  assert len(rows) == 2 and all(r["method"] == "kmeans" for r in rows)
  assert all(r["n_labels"] <= 2 for r in rows)


def test_rescoring_saved_label_maps_reproduces_the_run(tmp_path):
  """Label maps and object PNGs scored again give the run's numbers, every protocol."""
  from sgscn_jax.evaluation.objects import ObjectConfig
  from sgscn_jax.running import rescore
  cases = write_lesion_folder(tmp_path / "data")
  result = _run(cases, tmp_path / "out", objects=ObjectConfig(polarity="dark"))
  assert len(list((tmp_path / "out" / "objects").glob("*.png"))) == 3
  summary = rescore.rescore(cases + [], folder.load_case, str(tmp_path / "out"))
  assert summary["scored"] == 3 and summary["failed"] == 0
  assert {f"{p}.dice" for p in ("largest_overlap", "paper_fill", "object", "central")} <= set(
      summary["metrics"])
  for name, stats in summary["metrics"].items():
    np.testing.assert_allclose(stats["mean"], result.summary["metrics"][name]["mean"], rtol=1e-9)
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.evaluate", "--dataset=folder",
       f"--images={tmp_path / 'data' / 'images'}", f"--masks={tmp_path / 'data' / 'masks'}",
       f"--out_dir={tmp_path / 'out'}", "--name=again"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "largest_overlap.dice" in proc.stdout and "object.dice" in proc.stdout
  assert (tmp_path / "out" / "again.csv").is_file()


def _recording(calls):
  """SGSCN as registered, but whose `segment_batch` only records that it was called."""
  class Recording:
    def segment_batch(self, *args, **kwargs):
      calls.append(args)
  return dataclasses.replace(get_method("sgscn"), make_entry_points=lambda options: Recording())


def test_resuming_an_older_run_adds_the_new_protocols(tmp_path):
  """Cases finished before paper+fill and the object existed are brought up to date from
  their label maps when the run is resumed; nothing is segmented again."""
  from sgscn_jax.evaluation.objects import ObjectConfig
  cases = write_lesion_folder(tmp_path / "data")
  first = _run(cases, tmp_path / "out")
  for row in first.rows:  # as an older version wrote them: no paper+fill, no object
    old = {k: v for k, v in row.items() if not k.startswith("paper_fill.")}
    results.write_case(tmp_path / "out", old)
  calls = []
  again = image_runs.run_dataset(
      cases, folder.load_case, TINY,
      image_runs.RunOptions(out_dir=str(tmp_path / "out"), batch_size=2,
                            objects=ObjectConfig(polarity="dark")),
      _recording(calls))
  assert not calls and len(again.rows) == 3
  assert all("object.dice" in r and "paper_fill.dice" in r for r in again.rows)
  for a, b in zip(first.rows, again.rows):
    assert a["largest_overlap.dice"] == b["largest_overlap.dice"]
  assert "object.dice" in again.summary["metrics"]
  # Objects found by an older version of the object step are found again.
  from sgscn_jax.evaluation import objects
  for row in again.rows:
    results.write_case(tmp_path / "out", dict(row, object_version=objects.VERSION - 1,
                                              object_reason="stale"))
  third = image_runs.run_dataset(
      cases, folder.load_case, TINY,
      image_runs.RunOptions(out_dir=str(tmp_path / "out"), batch_size=2,
                            objects=ObjectConfig(polarity="dark")),
      _recording(calls))
  assert not calls
  assert all(r["object_version"] == objects.VERSION and r["object_reason"] != "stale"
             for r in third.rows)
  assert all(r["object_config"] == "polarity='dark'" for r in third.rows)
  # ... and so are objects found with other object settings (here: per connected piece).
  fourth = image_runs.run_dataset(
      cases, folder.load_case, TINY,
      image_runs.RunOptions(out_dir=str(tmp_path / "out"), batch_size=2,
                            objects=ObjectConfig(polarity="dark", pieces=True)),
      _recording(calls))
  assert not calls
  assert all(r["object_config"] == "polarity='dark',pieces=True" for r in fourth.rows)
