"""JULE through the runners: a folder of volumes resumed case by case, and the command line
on 2D images (`--method jule --method_options ...`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgscn_jax.data.datasets import list_dataset
from sgscn_jax.running import volumes
from test_jule import TEST_CONFIG, two_tissue_volume

ROOT = Path(__file__).resolve().parents[1]


def test_a_folder_of_volumes_resumes_at_the_volume_level(tmp_path):
  nib = pytest.importorskip("nibabel")
  images, masks = tmp_path / "images", tmp_path / "masks"
  images.mkdir()
  masks.mkdir()
  for i in range(2):
    volume, truth = two_tissue_volume(seed=i, shift=i)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])   # (i, j, k) = (x, y, z): 2 mm slices
    nib.save(nib.Nifti1Image(np.transpose(volume[..., 0], (2, 1, 0)), affine),
             os.fspath(images / f"v{i}.nii.gz"))
    nib.save(nib.Nifti1Image(np.transpose(truth.astype(np.uint8), (2, 1, 0)), affine),
             os.fspath(masks / f"v{i}.nii.gz"))
  cases, load = list_dataset("volume", images=str(images), masks=str(masks))
  options = volumes.VolumeOptions(out_dir=str(tmp_path / "out"), method_name="jule")
  first = volumes.run_volumes(cases, load, TEST_CONFIG, options)
  assert len(first.rows) == 2 and not first.failures
  out = tmp_path / "out"
  labels = {i: np.asarray(nib.load(os.fspath(out / "labels" / f"v{i}.nii.gz")).dataobj)
            for i in range(2)}
  row = json.loads((out / "cases" / "v1.json").read_text())
  assert row["method"] == "jule" and row["estimated_mb"] > 0 and row["n_labels"] == 2
  assert row["largest_overlap.dice"] > 0.8   # 1x3x3 patches: the 2 mm axis has one tap
  kept = (out / "cases" / "v0.json").stat().st_mtime_ns
  (out / "cases" / "v1.json").unlink()
  (out / "labels" / "v1.nii.gz").unlink()
  again = volumes.run_volumes(cases, load, TEST_CONFIG, options)
  assert len(again.rows) == 2
  assert (out / "cases" / "v0.json").stat().st_mtime_ns == kept      # not recomputed
  redone = np.asarray(nib.load(os.fspath(out / "labels" / "v1.nii.gz")).dataobj)
  np.testing.assert_array_equal(redone, labels[1])                    # same key, same labels


def test_command_line_runs_jule_on_images(tmp_path):
  out = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.segment", "--dataset=demo", "--demo_n=1",
       "--demo_size=32", "--method=jule", "--k=2", f"--out_dir={out}",
       "--method_options=n_patches=96,channels=8,embed_dim=8,epochs_per_period=1,"
       "final_epochs=1,batch_size=32,kmeans_restarts=1,kmeans_iterations=10"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = list((out / "cases").glob("*.json"))
  assert len(rows) == 1
  row = json.loads(rows[0].read_text())
  assert row["method"] == "jule" and row["n_labels"] <= 2
  assert 0.0 <= row["largest_overlap.dice"] <= 1.0   # a smoke run: 96 patches, one epoch


def test_method_options_are_typed_and_unknown_fields_are_refused():
  from sgscn_jax import registry
  spec = registry.parse_method("jule:n_patches=64,eta=0.5,progress=true")
  config = spec.config({"jule": TEST_CONFIG})
  assert (config.n_patches, config.eta, config.progress) == (64, 0.5, True)
  with pytest.raises(ValueError, match="no_such_field"):
    registry.parse_method("jule:no_such_field=1")
