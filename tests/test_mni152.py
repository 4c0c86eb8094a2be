"""The MNI152 command end to end at a tiny working size (skipped without nilearn)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mni152_command_scores_every_method(tmp_path):
  pytest.importorskip("nilearn")
  nib = pytest.importorskip("nibabel")
  out = tmp_path / "mni"
  methods = ["sgscn_3d", "kmeans"]
  try:
    import ants  # noqa: F401 - the extra 'atropos'
    methods.append("atropos:mrf=0.1")
  except ImportError:
    pass
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.mni152", f"--out_dir={out}", "--factor=8",
       "--iterations=2", f"--methods={','.join(methods)}"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads((out / "results.json").read_text())
  assert [r["method"] for r in rows] == methods
  assert all(r["mask"] == "brain" for r in rows)
  assert {r["k"] for r in rows if "k" in r} == {3}    # CSF, GM, WM inside the brain mask
  for r in rows:
    assert 0 <= r["dice_gm"] <= 1 and 0 <= r["dice_wm"] <= 1 and r["peak_rss_mb"] > 0
  assert "plan sgscn_3d: 3d at" in proc.stderr
  assert "| sgscn_3d |" in (out / "table.md").read_text()
  labels = nib.load(os.fspath(out / "kmeans_labels.nii.gz"))
  assert labels.shape == (99, 117, 95)  # the template's grid at 2 mm, aligned with it
