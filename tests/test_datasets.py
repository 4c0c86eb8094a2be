"""Tests of the data-set layouts (sgscn_jax.data.datasets) and of working size / buckets
(sgscn_jax.data.resize), on layouts written here and on the real shared data."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from sgscn_jax.data import resize
from sgscn_jax.data import decode
from sgscn_jax.data.datasets import DATASETS, Case, Record, get_dataset

H, W = 10, 14


def _rgb(seed=0, shape=(H, W)):
  return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _mask(shape=(H, W)):
  m = np.zeros(shape, bool)
  m[2:7, 3:9] = True
  return m


def _save(path, array, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix == ".tif":
    tifffile.imwrite(path, array, compression="lzw", **kwargs)
  else:
    Image.fromarray(array).save(path)
  return path


def test_registry():
  for name in DATASETS:
    module = get_dataset(name)
    assert callable(module.list_cases) and callable(module.load_case)
  with pytest.raises(ValueError, match="unknown data set"):
    get_dataset("isic")


# -------------------------------------------------------------------------------- PH2


def _ph2(root, names=("IMD002", "IMD010", "IMD001"), table=None):
  images = root / "PH2 Dataset images"
  for i, name in enumerate(names):
    _save(images / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp", _rgb(i))
    mask = _mask()
    if name == "IMD002":  # the full set has 24-bit 0/255 masks too
      mask = np.dstack([mask.astype(np.uint8) * 255] * 3)
    _save(images / name / f"{name}_lesion" / f"{name}_lesion.bmp", mask)
  if table is not None:
    (root / "PH2_dataset.txt").write_text(table)
  return root


TAB_TABLE = "Name\tClinical Diagnosis\tAsymmetry\nIMD001\t0\t0\nIMD002\t2\t1\nIMD010\t1\t2\n"
PIPE_TABLE = (
    "||   Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry | Pigment Network"
    " ||  Colors ||\n"
    "|| IMD001 ||                        ||                  0 ||  0 |  T ||  4 ||\n"
    "|| IMD002 ||               Melanoma ||                  2 ||  2 | AT ||  3 4 ||\n"
    "|| IMD010 ||                        ||                    ||  0 |  T ||  4 ||\n"
    "\nLegend: 0 - Common Nevus; 1 - Atypical Nevus; 2 - Melanoma\n")


def test_ph2_tab_table(tmp_path):
  module = get_dataset("ph2")
  cases = module.list_cases(_ph2(tmp_path, table=TAB_TABLE))
  assert [c.case_id for c in cases] == ["IMD001", "IMD002", "IMD010"]
  assert [c.extra["diagnosis"] for c in cases] == [0, 2, 1]
  assert cases[1].extra["diagnosis_name"] == "melanoma"
  record = module.load_case(cases[1])
  assert isinstance(record, Record) and record.image.shape == (H, W, 3)
  np.testing.assert_array_equal(record.mask, _mask())  # the 24-bit mask
  assert record.extra["normalisation"]["rule"] == "uint8 / 255"
  assert record.extra["diagnosis"] == 2
  # data_dir may be the images folder itself; the table is found beside it.
  again = module.list_cases(tmp_path / "PH2 Dataset images")
  assert again == cases


def test_ph2_pipe_table_missing_table_and_bad_table(tmp_path):
  module = get_dataset("ph2")
  cases = module.list_cases(_ph2(tmp_path, table=PIPE_TABLE))
  assert [c.extra["diagnosis"] for c in cases] == [0, 2, None]
  os.remove(tmp_path / "PH2_dataset.txt")
  assert all(c.extra["diagnosis"] is None for c in module.list_cases(tmp_path))
  (tmp_path / "PH2_dataset.txt").write_text("IMD001 melanoma\n")
  with pytest.raises(ValueError, match="Clinical Diagnosis"):
    module.list_cases(tmp_path)
  (tmp_path / "PH2_dataset.txt").write_text("Name\tClinical Diagnosis\nIMD001\t7\n")
  with pytest.raises(ValueError, match="not 0, 1 or 2"):
    module.list_cases(tmp_path)


def test_ph2_missing_files_and_folders(tmp_path):
  module = get_dataset("ph2")
  with pytest.raises(ValueError, match="does not exist"):
    module.list_cases(tmp_path / "nowhere")
  (tmp_path / "PH2 Dataset images").mkdir()
  with pytest.raises(ValueError, match="no PH2 cases found in .*PH2 Dataset images"):
    module.list_cases(tmp_path)
  _ph2(tmp_path, names=("IMD001",))
  os.remove(tmp_path / "PH2 Dataset images/IMD001/IMD001_lesion/IMD001_lesion.bmp")
  with pytest.raises(ValueError, match="IMD001: missing .*IMD001_lesion.bmp"):
    module.list_cases(tmp_path)


def test_load_case_rejects_mask_of_another_size(tmp_path):
  module = get_dataset("ph2")
  _ph2(tmp_path, names=("IMD001",))
  _save(tmp_path / "PH2 Dataset images/IMD001/IMD001_lesion/IMD001_lesion.bmp",
        _mask((H + 1, W)))
  (case,) = module.list_cases(tmp_path)
  with pytest.raises(decode.ImageReadError, match="IMD001_lesion.bmp: mask is 11x14"):
    module.load_case(case)


# ------------------------------------------------------------------------------ DRIVE


def _drive(root, split="training", numbers=("21", "22"), manual=True):
  for i, n in enumerate(numbers):
    _save(root / split / "images" / f"{n}_{split}.tif", _rgb(i), photometric="rgb")
    if manual:
      _save(root / split / "1st_manual" / f"{n}_manual1.gif", _mask().astype(np.uint8) * 255)
    fov = np.ones((H, W), np.uint8) * 255
    fov[0] = 0
    _save(root / split / "mask" / f"{n}_{split}_mask.gif", fov)
  return root


def test_drive_layout(tmp_path):
  module = get_dataset("drive")
  _drive(tmp_path)
  _drive(tmp_path, split="test", numbers=("01",), manual=False)
  cases = module.list_cases(tmp_path)
  assert [c.case_id for c in cases] == ["01_test", "21_training", "22_training"]
  assert cases[0].mask_path is None  # a release without test labels
  assert [c.case_id for c in module.list_cases(tmp_path, split="training")] == [
      "21_training", "22_training"]
  assert len(module.list_cases(tmp_path / "test")) == 1  # a split folder itself
  record = module.load_case(cases[1])
  assert record.image.shape == (H, W, 3) and record.mask.shape == (H, W)
  assert record.extra["valid"].dtype == np.bool_ and not record.extra["valid"][0].any()
  assert record.extra["valid"][1:].all()
  with pytest.raises(ValueError, match="split must be"):
    module.list_cases(tmp_path, split="validation")


def test_drive_missing_fov(tmp_path):
  module = get_dataset("drive")
  _drive(tmp_path)
  os.remove(tmp_path / "training/mask/22_training_mask.gif")
  with pytest.raises(ValueError, match="22_training: missing .*22_training_mask.gif"):
    module.list_cases(tmp_path)
  with pytest.raises(ValueError, match="no DRIVE cases"):
    module.list_cases(tmp_path / "training" / "mask")


# ---------------------------------------------------------------------------- lung CT


def test_lung_ct_layout(tmp_path):
  module = get_dataset("lung_ct")
  grey = _rgb(3)[..., 0]
  for name in ("ID_0002_Z_0010", "ID_0001_Z_0005"):
    _save(tmp_path / "2d_images" / f"{name}.tif", np.dstack([grey] * 3), photometric="rgb")
    _save(tmp_path / "2d_masks" / f"{name}.tif", np.dstack([_mask().astype(np.uint8) * 255] * 3),
          photometric="rgb")
  cases = module.list_cases(tmp_path)
  assert [c.case_id for c in cases] == ["ID_0001_Z_0005", "ID_0002_Z_0010"]
  record = module.load_case(cases[0])
  assert record.image.shape == (H, W, 1)  # R = G = B -> one channel
  np.testing.assert_array_equal(record.image[..., 0], grey / np.float32(255))
  np.testing.assert_array_equal(record.mask, _mask())
  os.remove(tmp_path / "2d_masks" / "ID_0001_Z_0005.tif")
  with pytest.raises(ValueError, match="missing mask"):
    module.list_cases(tmp_path)
  with pytest.raises(ValueError, match="lung CT image folder .*2d_images/2d_images"):
    module.list_cases(tmp_path / "2d_images")
  for name in os.listdir(tmp_path / "2d_masks"):
    os.remove(tmp_path / "2d_masks" / name)
  os.rmdir(tmp_path / "2d_masks")
  with pytest.raises(ValueError, match="lung CT mask folder .*2d_masks"):
    module.list_cases(tmp_path)


# ----------------------------------------------------------------------------- folder


def test_folder_paired_and_same_folder(tmp_path):
  module = get_dataset("folder")
  _save(tmp_path / "a" / "images" / "x1.png", _rgb(1))
  _save(tmp_path / "a" / "images" / "x0.jpg", _rgb(0))
  _save(tmp_path / "a" / "masks" / "x1.bmp", _mask())
  cases = module.list_cases(tmp_path / "a")  # default: images/, masks/, "{stem}.*"
  assert [(c.case_id, c.mask_path is not None) for c in cases] == [("x0", False), ("x1", True)]
  with pytest.raises(ValueError, match="x0.jpg' has no mask"):
    module.list_cases(tmp_path / "a", require_masks=True)
  # Masks beside the images, named by a pattern: they are not cases themselves.
  _save(tmp_path / "b" / "p.png", _rgb(2))
  _save(tmp_path / "b" / "p_mask.png", _mask().astype(np.uint8) * 255)
  (case,) = module.list_cases(tmp_path / "b", masks_dir=".", mask_pattern="{stem}_mask.png")
  assert case.case_id == "p" and case.mask_path.endswith("p_mask.png")
  record = module.load_case(case)
  np.testing.assert_array_equal(record.mask, _mask())
  # No mask folder at all: images only.
  assert module.list_cases(tmp_path / "b")[0].mask_path is None


def test_folder_errors(tmp_path):
  module = get_dataset("folder")
  with pytest.raises(ValueError, match="does not exist"):
    module.list_cases(tmp_path / "none")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no image cases found in .*empty"):
    module.list_cases(tmp_path / "empty")
  with pytest.raises(ValueError, match="mask folder"):
    module.list_cases(tmp_path / "empty", masks_dir="masks")
  _save(tmp_path / "c" / "images" / "q.png", _rgb())
  _save(tmp_path / "c" / "masks" / "q.png", _mask())
  _save(tmp_path / "c" / "masks" / "q.bmp", _mask())
  with pytest.raises(ValueError, match="several masks"):
    module.list_cases(tmp_path / "c")
  _save(tmp_path / "d" / "q.png", _rgb())
  _save(tmp_path / "d" / "q.bmp", _rgb())
  with pytest.raises(ValueError, match="occur twice"):
    module.list_cases(tmp_path / "d")


def test_case_is_cheap(tmp_path):
  """list_cases never decodes: a corrupt image is listed, and only load_case fails."""
  module = get_dataset("folder")
  (tmp_path / "images").mkdir()
  (tmp_path / "images" / "bad.png").write_bytes(b"not a png")
  (case,) = module.list_cases(tmp_path)
  assert isinstance(case, Case)
  with pytest.raises(decode.ImageReadError, match="bad.png"):
    module.load_case(case)


# ---------------------------------------------------------------- working size, buckets


def test_working_shape():
  assert resize.working_shape((575, 766, 3), None) == (575, 766)
  assert resize.working_shape((575, 766), 256) == (192, 256)  # 575 * 256 / 766 = 192.2
  assert resize.working_shape((766, 575), 256) == (256, 192)
  assert resize.working_shape((100, 100), 64) == (64, 64)
  assert resize.working_shape((575, 766), (128, 100)) == (128, 100)
  for bad in (0, (0, 5), (1, 2, 3)):
    with pytest.raises(ValueError):
      resize.working_shape((10, 10), bad)


def test_buckets():
  assert resize.bucket_shape((192, 256)) == (192, 256)
  assert resize.bucket_shape((193, 250)) == (192, 256)
  assert resize.bucket_shape((5, 40)) == (16, 48)
  assert resize.bucket_shape((193, 250), multiple=1) == (193, 250)
  buckets = [resize.bucket_shape(resize.working_shape(hw, None)) for hw in
             [(30, 40), (31, 41), (100, 40)]]
  assert buckets == [(32, 48), (32, 48), (96, 48)]


def test_resize_image_and_labels():
  image = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
  for method in ("bilinear", "area"):
    small = resize.resize_image(image, (20, 30), method)
    assert small.shape == (20, 30, 3) and small.dtype == np.float32
    assert image.min() - 1e-6 <= small.min() and small.max() <= image.max() + 1e-6
  area = resize.resize_image(image, (20, 30), "area")  # exact 2x2 means
  np.testing.assert_allclose(area, image.reshape(20, 2, 30, 2, 3).mean((1, 3)), atol=1e-6)
  constant = np.full((37, 53, 1), 0.25, np.float32)
  np.testing.assert_allclose(resize.resize_image(constant, (16, 16)), 0.25, atol=1e-6)
  labels = np.arange(12).reshape(3, 4)
  big = resize.labels_to_shape(labels, (6, 8))
  np.testing.assert_array_equal(big, labels.repeat(2, 0).repeat(2, 1))
  np.testing.assert_array_equal(resize.labels_to_shape(big, (3, 4)), labels)
  odd = resize.labels_to_shape(labels, (7, 5))
  assert set(np.unique(odd)) <= set(labels.ravel()) and odd.shape == (7, 5)
  with pytest.raises(ValueError):
    resize.resize_image(image[..., 0], (10, 10))


# ------------------------------------------------------------------------- real data


def test_real_ph2(shared_data):
  module = get_dataset("ph2")
  cases = module.list_cases(shared_data / "PH2")
  assert len(cases) == 40 and cases[0].case_id == "IMD003"
  assert collections.Counter(c.extra["diagnosis"] for c in cases) == {0: 16, 1: 16, 2: 8}
  record = module.load_case(cases[0])
  assert record.image.shape == (574, 765, 3) and record.mask.shape == (574, 765)
  # PH2 sizes vary by a few pixels; at size 256 and at native size they share a bucket.
  shapes = [Image.open(c.image_path).size[::-1] for c in cases]
  assert len(set(shapes)) > 5
  for size, bucket in ((256, (192, 256)), (None, (576, 768))):
    assert {resize.bucket_shape(resize.working_shape(hw, size)) for hw in shapes} == {bucket}


def test_real_drive(shared_data):
  module = get_dataset("drive")
  cases = module.list_cases(shared_data / "DRIVE")
  assert [c.case_id for c in cases] == [f"{n}_training" for n in range(21, 26)]
  record = module.load_case(cases[0])
  assert record.image.shape == (584, 565, 3)
  valid = record.extra["valid"]
  assert 0.6 < valid.mean() < 0.75 and 0.05 < record.mask[valid].mean() < 0.2


def test_real_lung_ct(shared_data):
  module = get_dataset("lung_ct")
  cases = module.list_cases(shared_data / "lung_ct")
  assert len(cases) == 4
  for case in cases:
    record = module.load_case(case)
    assert record.image.shape == (512, 512, 1) and 0.01 < record.mask.mean() < 0.5
  folder = get_dataset("folder").list_cases(
      shared_data / "lung_ct", images_dir="2d_images", masks_dir="2d_masks",
      require_masks=True)
  assert [c[:3] for c in folder] == [c[:3] for c in cases]
