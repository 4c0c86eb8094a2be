"""Volume files: NIfTI and TIFF round trips keep geometry; the volume data set and command line."""

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sgscn_jax.data import resize
from sgscn_jax.data import volume_io
from sgscn_jax.data import decode
from sgscn_jax.data.datasets import volume as volume_dataset

ROOT = Path(__file__).resolve().parents[1]
OBLIQUE = np.array([[-0.9, 0.1, 0.0, 10.0], [0.0, 1.1, 0.2, -20.0],
                    [0.05, 0.0, 3.0, 5.0], [0.0, 0.0, 0.0, 1.0]])


def _nifti(path, data_ijk, affine=OBLIQUE, unit="mm"):
  nib = pytest.importorskip("nibabel")
  image = nib.Nifti1Image(data_ijk, affine)
  image.header.set_xyzt_units(unit)
  image.set_qform(affine, 1)
  image.set_sform(affine, 2)
  nib.save(image, os.fspath(path))
  return image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip_keeps_affine_header_and_orientation(tmp_path, suffix):
  nib = pytest.importorskip("nibabel")
  data = np.random.default_rng(0).integers(0, 1000, (7, 9, 5)).astype(np.int16)  # (i, j, k)
  source = _nifti(tmp_path / f"a{suffix}", data)
  vf = volume_io.read_volume_file(tmp_path / f"a{suffix}")
  assert vf.volume.shape == (5, 9, 7, 1)  # [k, j, i, C]
  zooms = source.header.get_zooms()
  assert vf.spacing == pytest.approx(zooms[::-1]) and vf.info["unit"] == "mm"
  # Voxel [z, y, x] of the volume is voxel (x, y, z) of the file.
  low, high = vf.info["low"], vf.info["high"]
  expected = np.clip((data[3, 8, 1] - low) / (high - low), 0, 1)
  assert vf.volume[1, 8, 3, 0] == pytest.approx(expected, abs=1e-6)
  labels = np.zeros(vf.volume.shape[:3], np.int32)
  labels[1, 8, 3], labels[4, 0, 6] = 7, 300  # 300: needs 16 bits
  volume_io.write_label_volume(tmp_path / f"l{suffix}", labels, vf.geometry)
  back = nib.load(os.fspath(tmp_path / f"l{suffix}"))
  np.testing.assert_allclose(back.affine, source.affine)
  np.testing.assert_allclose(back.header.get_zooms(), zooms, rtol=1e-6)
  assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 2
  assert back.header.get_xyzt_units()[0] == "mm"
  stored = np.asarray(back.dataobj)
  assert np.issubdtype(stored.dtype, np.integer) and stored.shape == (7, 9, 5)
  assert stored[3, 8, 1] == 7 and stored[6, 0, 4] == 300
  mask = volume_io.read_volume_mask(tmp_path / f"l{suffix}", vf.volume.shape)
  np.testing.assert_array_equal(mask, labels > 0)


def test_display_view_puts_a_nifti_the_way_a_radiological_viewer_shows_it():
  nib = pytest.importorskip("nibabel")
  rng = np.random.default_rng(0)
  stored = rng.random((5, 6, 7)).astype(np.float32)        # (i, j, k)
  # i -> anterior-to-posterior (-y), j -> left-to-right (+x), k -> superior-to-inferior (-z)
  affine = np.array([[0, 2.0, 0, 0], [-3.0, 0, 0, 0], [0, 0, -4.0, 0], [0, 0, 0, 1]])
  image = nib.Nifti1Image(stored, affine)
  read = volume_io.nifti_volume(image)
  # Independent reference: nibabel's canonical (RAS+) data, our axis order (z, y, x), then
  # each axis reversed to increase toward inferior, posterior, left.
  canonical = np.asarray(nib.as_closest_canonical(image).dataobj)
  expected = np.flip(np.transpose(canonical, (2, 1, 0)), (0, 1, 2))
  shown, mask, none, spacing = volume_io.display_view(
      read.geometry, np.transpose(stored, (2, 1, 0)), read.volume[..., 0] > 0.5, None,
      spacing=read.spacing)
  np.testing.assert_array_equal(shown, expected)
  np.testing.assert_array_equal(mask, (expected - stored.min()) / np.ptp(stored) > 0.5)
  assert none is None
  assert read.spacing == (4.0, 2.0, 3.0) and spacing == (4.0, 3.0, 2.0)  # (S-I, A-P, R-L)
  # The common case, a RAS+ file: no reordering, every axis reversed.
  ras = volume_io.nifti_volume(nib.Nifti1Image(stored, np.diag([2.0, 2.0, 2.0, 1.0])))
  (view, _) = volume_io.display_view(ras.geometry, ras.volume, spacing=None)
  np.testing.assert_array_equal(view, ras.volume[::-1, ::-1, ::-1])
  # No orientation known (TIFF): unchanged.
  tiff = volume_io.Geometry("tiff", (1.0, 1.0, 1.0), None, None)
  assert volume_io.display_view(tiff, stored, spacing=(1, 2, 3)) == (stored, (1, 2, 3))


def test_tiff_round_trip_keeps_spacing(tmp_path):
  stack = np.random.default_rng(1).integers(0, 4000, (4, 6, 8)).astype(np.uint16)
  tifffile.imwrite(tmp_path / "v.tif", stack, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                   metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
  vf = volume_io.read_volume_file(tmp_path / "v.tif")
  assert vf.spacing == pytest.approx((2.0, 0.25, 0.5)) and vf.geometry.unit == "um"
  labels = (stack > 2000).astype(np.int32) * 2
  volume_io.write_label_volume(tmp_path / "l.tif", labels, vf.geometry)
  back = volume_io.read_volume(tmp_path / "l.tif")
  assert back.spacing == pytest.approx((2.0, 0.25, 0.5)) and back.info["unit"] == "um"
  np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)
  assert volume_io.peek(tmp_path / "v.tif") == ((4, 6, 8), 1, pytest.approx((2.0, 0.25, 0.5)))


def test_tiff_without_spacing_takes_the_flag(tmp_path):
  tifffile.imwrite(tmp_path / "v.tif", np.zeros((3, 4, 5), np.uint8), photometric="minisblack")
  assert volume_io.read_volume_file(tmp_path / "v.tif").spacing is None
  vf = volume_io.read_volume_file(tmp_path / "v.tif", spacing=(3, 1, 1))
  assert vf.spacing == (3.0, 1.0, 1.0) and vf.info["spacing_source"] == "given"


def test_missing_nibabel_is_a_clear_error(tmp_path, monkeypatch):
  real_import = builtins.__import__

  def no_nibabel(name, *args, **kwargs):
    if name == "nibabel" or name.startswith("nibabel."):
      raise ImportError("No module named 'nibabel'")
    return real_import(name, *args, **kwargs)

  monkeypatch.delitem(sys.modules, "nibabel", raising=False)
  monkeypatch.setattr(builtins, "__import__", no_nibabel)
  (tmp_path / "a.nii").write_bytes(b"\0" * 400)
  with pytest.raises(ImportError, match=r"pip install 'sgscn-jax\[nifti\]'"):
    volume_io.read_volume_file(tmp_path / "a.nii")


def test_bad_volume_files_are_clear_errors(tmp_path):
  pytest.importorskip("nibabel")
  with pytest.raises(ValueError, match="not a volume file"):
    volume_io.read_volume_file(tmp_path / "a.png")
  (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti file at all")
  with pytest.raises(decode.ImageReadError, match="bad.nii.gz"):
    volume_io.read_volume_file(tmp_path / "bad.nii.gz")
  _nifti(tmp_path / "m.nii.gz", np.ones((4, 4, 4), np.uint8))
  with pytest.raises(decode.ImageReadError, match="mask is 4x4x4"):
    volume_io.read_volume_mask(tmp_path / "m.nii.gz", (5, 4, 4, 1))


def test_volume_resampling():
  w = resize.area_weights(6, 3)
  np.testing.assert_allclose(w, [[.5, .5, 0, 0, 0, 0], [0, 0, .5, .5, 0, 0], [0, 0, 0, 0, .5, .5]])
  np.testing.assert_allclose(resize.area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
  vol = np.random.default_rng(2).random((4, 6, 8, 1)).astype(np.float32)
  small = resize.resize_volume(vol, (2, 3, 4))
  np.testing.assert_allclose(small[1, 2, 3, 0], vol[2:4, 4:6, 6:8, 0].mean(), rtol=1e-5)
  labels = np.arange(2 * 3 * 4).reshape(2, 3, 4)
  big = resize.labels_to_volume_shape(labels, (4, 6, 8))
  np.testing.assert_array_equal(big[::2, ::2, ::2], labels)
  np.testing.assert_array_equal(resize.labels_to_volume_shape(big, (2, 3, 4)), labels)


# ---------------------------------------------------------------- data set, command line


def _volumes(root):
  """One NIfTI and one TIFF volume with masks: a bright block on a dark background."""
  pytest.importorskip("nibabel")
  (root / "images").mkdir(parents=True)
  (root / "masks").mkdir()
  rng = np.random.default_rng(3)
  mask = np.zeros((6, 12, 12), bool)
  mask[2:5, 3:9, 4:10] = True
  vol = np.where(mask, 0.8, 0.2) + rng.normal(scale=0.03, size=mask.shape)
  _nifti(root / "images" / "a.nii.gz", vol.transpose(2, 1, 0).astype(np.float32),
         affine=np.diag([1.0, 1.0, 2.5, 1.0]))
  _nifti(root / "masks" / "a.nii.gz", mask.transpose(2, 1, 0).astype(np.uint8),
         affine=np.diag([1.0, 1.0, 2.5, 1.0]))
  tifffile.imwrite(root / "images" / "b.tif", (np.clip(vol, 0, 1) * 255).astype(np.uint8),
                   photometric="minisblack")
  tifffile.imwrite(root / "masks" / "b.tif", mask.astype(np.uint8) * 255, photometric="minisblack")
  return mask


def test_volume_dataset_lists_stems_and_loads_geometry(tmp_path):
  mask = _volumes(tmp_path)
  cases = volume_dataset.list_cases(tmp_path, spacing=(2.5, 1, 1))
  assert [c.case_id for c in cases] == ["a", "b"]
  assert cases[0].mask_path.endswith("a.nii.gz")
  a, b = (volume_dataset.load_case(c) for c in cases)
  assert a.image.shape == (6, 12, 12, 1) and a.extra["spacing"] == pytest.approx((2.5, 1, 1))
  np.testing.assert_array_equal(a.mask, mask)
  assert b.extra["spacing"] == (2.5, 1.0, 1.0) and b.extra["geometry"].format == "tiff"


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, "-m", "experiments.segment", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_command_line_segments_volumes_and_writes_aligned_labels(tmp_path):
  nib = pytest.importorskip("nibabel")
  _volumes(tmp_path / "data")
  out = tmp_path / "out"
  args = ("--dataset=volume", f"--images={tmp_path / 'data' / 'images'}",
          f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", "--iterations=3",
          "--n_channels=8", "--spacing=2.5,1,1")
  proc = _cli(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "plan a: 3d at 6x12x12" in proc.stderr and "8 channels" in proc.stderr
  label_a = nib.load(os.fspath(out / "labels" / "a.nii.gz"))
  np.testing.assert_allclose(label_a.affine, np.diag([1.0, 1.0, 2.5, 1.0]))
  assert label_a.shape == (12, 12, 6)
  assert volume_io.read_volume(out / "labels" / "b.tif").spacing == pytest.approx((2.5, 1, 1))
  rows = {p.stem: json.loads(p.read_text()) for p in (out / "cases").glob("*.json")}
  assert set(rows) == {"a", "b"}
  for row in rows.values():
    assert row["mode"] == "3d" and row["n_channels"] == 8 and row["spacing"] == "2.5x1x1"
    assert 0 <= row["largest_overlap.dice"] <= 1 and row["largest_overlap.hd95"] >= 0
  assert rows["a"]["unit"] == "mm"
  # the mask-free object, written like the labels (same format, same geometry), and scored
  object_a = nib.load(os.fspath(out / "objects" / "a.nii.gz"))
  np.testing.assert_allclose(object_a.affine, label_a.affine)
  assert set(np.unique(np.asarray(object_a.dataobj))) <= {0, 1}
  assert all(0 <= row["object.dice"] <= 1 for row in rows.values())
  assert (out / "overlays" / "a.png").is_file() and (out / "summary.md").is_file()
  assert "HD95 (" in (out / "summary.md").read_text()
  proc = _cli(*args)  # resumes: nothing left to do
  assert proc.returncode == 0 and "resuming: 2 of 2" in proc.stderr


def test_command_line_refuses_a_volume_that_cannot_fit(tmp_path):
  _volumes(tmp_path / "data")
  proc = _cli("--dataset=volume", f"--images={tmp_path / 'data' / 'images'}",
              f"--out_dir={tmp_path / 'out'}", "--memory_limit=100M", "--volume_mode=3d",
              "--factor=1", "--n_channels=100")
  assert proc.returncode == 3
  assert "refusing to start" in proc.stderr and "over the 0.1 GB memory budget" in proc.stderr
  assert not (tmp_path / "out" / "cases").exists()
