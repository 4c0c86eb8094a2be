"""The foreground (head) mask of a volume (`data.foreground`) on a synthetic head in air."""

import numpy as np

from sgscn_jax.data import foreground


def head_in_air(seed=0, shape=(20, 40, 36)):
  """A skull (bright shell), dark CSF and two tissues inside, a dark ventricle in the middle,
  a bright speck of noise in the air, Rician-like noise in the air: `(volume, head)`."""
  rng = np.random.default_rng(seed)
  grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
  r = np.sqrt(sum((g / (0.42 * n)) ** 2 for g, n in zip(grids, shape)))
  head = r < 1.0
  v = np.where(r < 0.55, 0.75, 0.5)                  # white and grey matter
  v = np.where((r >= 0.8) & head, 0.12, v)           # dark CSF under the skull
  v = np.where((r >= 0.9) & head, 0.9, v)            # skull
  v = np.where(r < 0.15, 0.1, v)                     # a ventricle (dark, enclosed)
  v = np.where(head, v, 0.0)
  v = np.abs(v + rng.normal(0, 0.04, shape))         # noise, also in the air
  v[2, 3, 3] = 0.9                                   # a bright speck in the air
  return v[..., None].astype(np.float32), head


def test_otsu_threshold_splits_two_levels():
  x = np.concatenate([np.full(100, 0.2), np.full(50, 0.7)])
  t = foreground.otsu_threshold(x)
  assert 0.2 < t <= 0.7
  assert foreground.otsu_threshold(np.ones(5)) is None


def test_head_in_air():
  volume, head = head_in_air()
  mask = foreground.foreground_mask(volume, spacing=(2.0, 1.0, 1.0))
  dice = 2 * np.sum(mask & head) / (mask.sum() + head.sum())
  assert dice > 0.97
  assert mask[10, 20, 18]                            # the ventricle is inside
  assert not mask[2, 3, 3]                           # the speck in the air is not
  assert not mask[0].any()                           # nor the air around the head


def test_flat_volume_is_all_foreground_and_masked_standardise():
  assert foreground.foreground_mask(np.ones((4, 5, 6, 1), np.float32)).all()
  volume, head = head_in_air(1, (8, 16, 16))
  x = foreground.masked_standardise(volume, head)
  assert abs(float(x[head].mean())) < 1e-4 and abs(float(x[head].std()) - 1) < 1e-3
  assert np.all(x[~head] == 0)


def _save_nifti(path, dhw):
  import nibabel as nib
  nib.save(nib.Nifti1Image(np.transpose(dhw, (2, 1, 0)).astype(np.float32),
                           np.diag([1.0, 1.0, 2.0, 1.0])), str(path))


def test_volume_data_set_foreground_property(tmp_path):
  import pytest
  pytest.importorskip("nibabel")
  from sgscn_jax.data.datasets import volume as volume_set
  volume, head = head_in_air(2, (10, 24, 20))
  (tmp_path / "images").mkdir()
  (tmp_path / "brain").mkdir()
  _save_nifti(tmp_path / "images" / "a.nii.gz", volume[..., 0])
  own = np.zeros(head.shape, bool)
  own[3:7, 8:16, 6:14] = True
  _save_nifti(tmp_path / "brain" / "a.nii.gz", own.astype(np.float32))
  none = volume_set.load_case(volume_set.list_cases(tmp_path)[0])
  assert "valid" not in none.extra
  otsu = volume_set.load_case(volume_set.list_cases(tmp_path, foreground="otsu")[0])
  dice = 2 * np.sum(otsu.extra["valid"] & head) / (otsu.extra["valid"].sum() + head.sum())
  assert dice > 0.9                                  # a small volume: its rim counts
  shipped = volume_set.load_case(volume_set.list_cases(tmp_path, foreground="brain")[0])
  np.testing.assert_array_equal(shipped.extra["valid"], own)
  with pytest.raises(ValueError, match="foreground folder"):
    volume_set.list_cases(tmp_path, foreground="nowhere")


def test_runner_clusters_inside_the_foreground(tmp_path):
  """`experiments.segment --dataset volume --foreground otsu`: the runner hands the foreground
  to the method (k-means clusters the head's voxels alone, Atropos and JULE take `mask=`),
  the air is label 0, and a 2D data set refuses the flag in one line."""
  import subprocess
  import sys

  import pytest
  nib = pytest.importorskip("nibabel")
  volume, head = head_in_air(3, (10, 24, 20))
  (tmp_path / "images").mkdir()
  _save_nifti(tmp_path / "images" / "a.nii.gz", volume[..., 0])
  out = tmp_path / "run"
  cmd = [sys.executable, "-m", "experiments.segment", "--dataset", "volume",
         "--data_dir", str(tmp_path), "--method", "kmeans:2", "--foreground", "otsu",
         "--noobjects", "--out_dir", str(out)]
  done = subprocess.run(cmd, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  labels = np.transpose(np.asarray(nib.load(str(out / "labels" / "a.nii.gz")).dataobj),
                        (2, 1, 0))
  mask = foreground.foreground_mask(volume, spacing=(2.0, 1.0, 1.0))
  assert np.all(labels[~mask] == 0)                  # the air: label 0, no cluster of its own
  assert set(np.unique(labels[mask])) == {1, 2}      # two clusters, both inside the head
  bad = subprocess.run(cmd[:3] + ["--dataset", "demo", "--foreground", "otsu", "--out_dir",
                                  str(tmp_path / "demo")], capture_output=True, text=True)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --foreground otsu")
