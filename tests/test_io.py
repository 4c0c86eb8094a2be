"""Tests of sgscn_jax.data.decode on files written here, of every format and bit depth, and on the
real shared data."""

from __future__ import annotations

import os
import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from sgscn_jax.data import decode
from sgscn_jax.data import files
from sgscn_jax.data import image_io
from sgscn_jax.data import volume_io

H, W = 12, 16


def _rgb(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _grey(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (H, W), dtype=np.uint8)


def _mask(seed: int = 0) -> np.ndarray:
  m = np.zeros((H, W), bool)
  m[3:9, 4:11] = True
  m[0, 0] = True
  return m


# ------------------------------------------------------------------------ 8-bit formats


@pytest.mark.parametrize("ext", ["png", "bmp", "tif"])
def test_rgb_uint8_exact(tmp_path, ext):
  rgb = _rgb()
  path = tmp_path / f"a.{ext}"
  Image.fromarray(rgb).save(path)
  image, info = image_io.read_image(path)
  assert image.shape == (H, W, 3) and image.dtype == np.float32
  np.testing.assert_array_equal(image, rgb.astype(np.float32) / 255)
  assert info["rule"] == "uint8 / 255" and info["channels"] == "rgb"


@pytest.mark.parametrize("ext", ["png", "bmp", "gif", "tif"])
def test_grey_uint8_exact(tmp_path, ext):
  grey = _grey()
  path = tmp_path / f"a.{ext}"
  Image.fromarray(grey).save(path)
  image, _ = image_io.read_image(path)
  assert image.shape == (H, W, 1)
  np.testing.assert_array_equal(image[..., 0], grey.astype(np.float32) / 255)


def test_jpeg_close(tmp_path):
  rgb = np.zeros((H, W, 3), np.uint8)
  rgb[:, W // 2:] = (200, 100, 50)
  Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
  image, info = image_io.read_image(tmp_path / "a.jpg")
  assert image.shape == (H, W, 3) and info["dtype"] == "uint8"
  assert np.abs(image - rgb / 255).mean() < 0.03


def test_rgba_drops_alpha(tmp_path):
  rgb = _rgb()
  rgba = np.dstack([rgb, np.full((H, W), 7, np.uint8)])
  Image.fromarray(rgba).save(tmp_path / "a.png")
  image, info = image_io.read_image(tmp_path / "a.png")
  np.testing.assert_array_equal(image, rgb / np.float32(255))
  assert info["channels"] == "rgba -> rgb"


def test_grey_alpha_drops_alpha(tmp_path):
  grey = _grey()
  Image.fromarray(np.dstack([grey, grey // 2])).save(tmp_path / "a.png")  # mode LA
  image, _ = image_io.read_image(tmp_path / "a.png")
  np.testing.assert_array_equal(image[..., 0], grey / np.float32(255))


def test_rgb_with_equal_channels_becomes_grey(tmp_path):
  grey = _grey()
  Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "a.png")
  image, info = image_io.read_image(tmp_path / "a.png")
  assert image.shape == (H, W, 1)
  np.testing.assert_array_equal(image[..., 0], grey / np.float32(255))
  assert info["channels"].endswith("-> grey")


def test_one_bit_image_is_zero_one(tmp_path):
  Image.fromarray(_mask()).save(tmp_path / "a.bmp")
  image, info = image_io.read_image(tmp_path / "a.bmp")
  np.testing.assert_array_equal(image[..., 0], _mask().astype(np.float32))
  assert info["dtype"] == "bool"


# ------------------------------------------------------------- 16-bit, float, percentiles


def test_png16_percentile_rule(tmp_path):
  values = np.random.default_rng(1).integers(0, 4096, (H, W), dtype=np.uint16)
  iio.imwrite(tmp_path / "a.png", values)
  image, info = image_io.read_image(tmp_path / "a.png")
  low, high = np.percentile(values.astype(np.float64), [0.5, 99.5])
  assert info["dtype"] == "uint16" and info["rule"].startswith("percentile 0.5-99.5")
  assert info["low"] == pytest.approx(low) and info["high"] == pytest.approx(high)
  expected = np.clip((values - low) / (high - low), 0, 1)
  np.testing.assert_allclose(image[..., 0], expected, atol=1e-6)
  assert image.min() == 0.0 and image.max() == 1.0


def test_tiff_lzw_uint16_and_int16(tmp_path):
  values = np.random.default_rng(2).integers(-500, 3000, (H, W)).astype(np.int16)
  tifffile.imwrite(tmp_path / "a.tif", values, compression="lzw")
  image, info = image_io.read_image(tmp_path / "a.tif")
  assert info["dtype"] == "int16" and image.shape == (H, W, 1)
  assert 0.0 <= image.min() and image.max() <= 1.0
  rgb16 = np.random.default_rng(3).integers(0, 65535, (H, W, 3)).astype(np.uint16)
  tifffile.imwrite(tmp_path / "b.tif", rgb16, compression="lzw", photometric="rgb")
  image, info = image_io.read_image(tmp_path / "b.tif")
  assert image.shape == (H, W, 3) and info["dtype"] == "uint16"


def test_tiff_lzw_rgb_uint8_exact(tmp_path):
  rgb = _rgb(4)
  tifffile.imwrite(tmp_path / "a.tif", rgb, compression="lzw", photometric="rgb")
  image, _ = image_io.read_image(tmp_path / "a.tif")
  np.testing.assert_array_equal(image, rgb / np.float32(255))


def test_float_tiff_in_unit_range_kept(tmp_path):
  values = np.random.default_rng(5).random((H, W)).astype(np.float32)
  tifffile.imwrite(tmp_path / "a.tif", values)
  image, info = image_io.read_image(tmp_path / "a.tif")
  np.testing.assert_array_equal(image[..., 0], values)
  assert info["rule"] == "float in [0, 1] kept"


def test_float_tiff_outside_unit_range_uses_percentiles(tmp_path):
  values = (np.random.default_rng(6).random((H, W)) * 1000 - 200).astype(np.float32)
  tifffile.imwrite(tmp_path / "a.tif", values)
  image, info = image_io.read_image(tmp_path / "a.tif")
  assert info["rule"].startswith("percentile")
  assert image.min() == 0.0 and image.max() == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_nan_or_inf_rejected(tmp_path, bad):
  values = np.zeros((H, W), np.float32)
  values[2, 3] = bad
  tifffile.imwrite(tmp_path / "a.tif", values)
  with pytest.raises(decode.ImageReadError, match="NaN or infinite"):
    image_io.read_image(tmp_path / "a.tif")


def test_constant_image_becomes_zero():
  values, info = decode.normalise_intensities(np.full((4, 4), 1234, np.uint16))
  np.testing.assert_array_equal(values, 0.0)
  assert "constant" in info["rule"]


def test_percentiles_coinciding_widen_to_min_max():
  values = np.zeros((40, 40), np.uint16)
  values[0, 0] = 1000  # 1 pixel in 1600: both percentiles are 0
  out, info = decode.normalise_intensities(values)
  assert info["rule"].startswith("min-max")
  assert out[0, 0] == 1.0 and out[1, 1] == 0.0


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float64]),
                  hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=8),
                  elements=st.integers(0, 255)))
def test_normalise_always_in_unit_range(values):
  out, info = decode.normalise_intensities(values)
  assert out.dtype == np.float32 and out.shape == values.shape
  assert np.all((out >= 0) & (out <= 1))
  assert {"dtype", "rule", "low", "high"} <= set(info)


# ------------------------------------------------------------------- stacks and volumes


def test_multipage_tiff_is_a_volume(tmp_path):
  stack = np.random.default_rng(7).integers(0, 4000, (5, H, W)).astype(np.uint16)
  tifffile.imwrite(tmp_path / "v.tif", stack, photometric="minisblack", compression="lzw")
  with pytest.raises(decode.ImageReadError, match="read_volume"):
    image_io.read_image(tmp_path / "v.tif")
  volume, spacing, info = volume_io.read_volume(tmp_path / "v.tif")
  assert volume.shape == (5, H, W, 1) and volume.dtype == np.float32 and spacing is None
  low, high = np.percentile(stack.astype(np.float64), [0.5, 99.5])  # over the whole volume
  assert info["low"] == pytest.approx(low) and info["high"] == pytest.approx(high)


def test_rgb_volume_and_single_page(tmp_path):
  stack = np.random.default_rng(8).integers(0, 256, (3, H, W, 3)).astype(np.uint8)
  tifffile.imwrite(tmp_path / "v.tif", stack, photometric="rgb")
  volume, _, _ = volume_io.read_volume(tmp_path / "v.tif")
  np.testing.assert_array_equal(volume, stack / np.float32(255))
  tifffile.imwrite(tmp_path / "p.tif", stack[0], photometric="rgb")
  assert volume_io.read_volume(tmp_path / "p.tif").volume.shape == (1, H, W, 3)


def test_volume_spacing_imagej_and_ome(tmp_path):
  stack = np.random.default_rng(9).integers(0, 4000, (4, H, W)).astype(np.uint16)
  tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                   metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
  record = volume_io.read_volume(tmp_path / "ij.tif")
  assert record.spacing == pytest.approx((2.0, 0.25, 0.5))
  tifffile.imwrite(tmp_path / "ome.tif", stack, ome=True, metadata={
      "axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 3.0})
  record = volume_io.read_volume(tmp_path / "ome.tif")
  assert record.spacing == pytest.approx((3.0, 0.25, 0.5))
  assert record.volume.shape == (4, H, W, 1)


def test_volume_of_non_tiff_rejected(tmp_path):
  Image.fromarray(_grey()).save(tmp_path / "a.png")
  with pytest.raises(decode.ImageReadError, match="not a TIFF"):
    volume_io.read_volume(tmp_path / "a.png")


# ------------------------------------------------------------------------------- errors


def test_error_is_value_error_naming_the_file(tmp_path):
  assert issubclass(decode.ImageReadError, ValueError)
  with pytest.raises(decode.ImageReadError, match="no such file") as caught:
    image_io.read_image(tmp_path / "missing.png")
  assert "missing.png" in str(caught.value)
  again = pickle.loads(pickle.dumps(caught.value))
  assert str(again) == str(caught.value) and again.path == caught.value.path
  with pytest.raises(decode.ImageReadError, match="not a regular file"):
    image_io.read_image(tmp_path)
  (tmp_path / "empty.png").write_bytes(b"")
  with pytest.raises(decode.ImageReadError, match="empty file"):
    image_io.read_mask(tmp_path / "empty.png")


@pytest.mark.parametrize("ext", ["png", "bmp", "jpg", "gif", "tif"])
def test_corrupt_and_truncated_files(tmp_path, ext):
  Image.fromarray(_rgb()).save(tmp_path / f"good.{ext}")
  data = (tmp_path / f"good.{ext}").read_bytes()
  (tmp_path / f"truncated.{ext}").write_bytes(data[: len(data) // 2])
  garbage = (b"II*\x00" if ext == "tif" else b"") + b"this is not an image" * 5
  (tmp_path / f"corrupt.{ext}").write_bytes(garbage)
  for name in (f"truncated.{ext}", f"corrupt.{ext}"):
    with pytest.raises(decode.ImageReadError, match="unreadable, corrupt or truncated") as caught:
      image_io.read_image(tmp_path / name)
    assert name in str(caught.value)
    with pytest.raises(decode.ImageReadError):
      image_io.read_mask(tmp_path / name)


def test_animated_gif_rejected(tmp_path):
  frames = [Image.fromarray(_grey(i)) for i in range(3)]
  frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
  with pytest.raises(decode.ImageReadError, match="3 frames"):
    image_io.read_image(tmp_path / "a.gif")


def test_too_small_and_unsupported_shapes(tmp_path):
  Image.fromarray(_rgb()[:1]).save(tmp_path / "row.png")
  with pytest.raises(decode.ImageReadError, match="fewer than 2 pixels"):
    image_io.read_image(tmp_path / "row.png")
  with pytest.raises(decode.ImageReadError, match="fewer than 2 pixels"):
    image_io.read_mask(tmp_path / "row.png")
  five = np.zeros((H, W, 5), np.uint8)
  tifffile.imwrite(tmp_path / "five.tif", five, photometric="minisblack", planarconfig="contig")
  with pytest.raises(decode.ImageReadError, match="unsupported shape"):
    image_io.read_image(tmp_path / "five.tif")


# -------------------------------------------------------------------------------- masks


def test_masks_in_every_storage(tmp_path):
  mask = _mask()
  u8 = mask.astype(np.uint8) * 255
  Image.fromarray(mask).save(tmp_path / "one_bit.bmp")  # 1-bit
  Image.fromarray(u8).save(tmp_path / "grey.png")  # 0/255
  Image.fromarray(np.dstack([u8] * 3)).save(tmp_path / "rgb.bmp")  # 24-bit 0/255
  Image.fromarray(np.dstack([u8, 0 * u8, 0 * u8])).save(tmp_path / "red.png")  # coloured
  Image.fromarray(np.dstack([u8] * 3 + [np.full_like(u8, 255)])).save(tmp_path / "rgba.png")
  Image.fromarray(u8).save(tmp_path / "frame.gif")  # imageio adds a frame axis
  tifffile.imwrite(tmp_path / "lzw.tif", np.dstack([u8] * 3), compression="lzw",
                   photometric="rgb")
  iio.imwrite(tmp_path / "sixteen.png", mask.astype(np.uint16) * 1000)
  for name in ("one_bit.bmp", "grey.png", "rgb.bmp", "red.png", "rgba.png", "frame.gif",
               "lzw.tif", "sixteen.png"):
    read = image_io.read_mask(tmp_path / name)
    assert read.dtype == np.bool_ and read.shape == (H, W), name
    np.testing.assert_array_equal(read, mask, err_msg=name)


def test_mask_of_another_size_rejected(tmp_path):
  Image.fromarray(_mask()).save(tmp_path / "m.bmp")
  assert image_io.read_mask(tmp_path / "m.bmp", shape=(H, W, 3)).shape == (H, W)
  with pytest.raises(decode.ImageReadError, match=f"mask is {H}x{W} .* image is {H}x{W + 1}"):
    image_io.read_mask(tmp_path / "m.bmp", shape=(H, W + 1))


# ------------------------------------------------------------------------------ writers


def test_write_label_map_8_and_16_bit(tmp_path):
  labels = np.arange(H * W).reshape(H, W) % 200
  files.write_label_map(tmp_path / "l8.png", labels)
  back = iio.imread(tmp_path / "l8.png")
  assert back.dtype == np.uint8
  np.testing.assert_array_equal(back, labels)
  files.write_label_map(tmp_path / "l16.png", labels * 300)
  back = iio.imread(tmp_path / "l16.png")
  assert back.dtype == np.uint16
  np.testing.assert_array_equal(back, labels * 300)
  for bad in (labels - 1, labels * 1000, labels.astype(float), labels[None]):
    with pytest.raises(ValueError):
      files.write_label_map(tmp_path / "bad.png", bad)
  assert sorted(os.listdir(tmp_path)) == ["l16.png", "l8.png"]  # no temporary left


def test_write_png_round_trip(tmp_path):
  rgb = _rgb()
  files.write_png(tmp_path / "a.png", rgb)
  np.testing.assert_array_equal(iio.imread(tmp_path / "a.png"), rgb)
  with pytest.raises(ValueError, match="uint8"):
    files.write_png(tmp_path / "b.png", rgb.astype(np.float32))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
  target = tmp_path / "out.txt"
  files.atomic_write_bytes(target, b"old")
  with pytest.raises(RuntimeError):
    with files.atomic_open(target, "w") as f:
      f.write("half")
      raise RuntimeError("interrupted")
  assert target.read_bytes() == b"old"
  assert os.listdir(tmp_path) == ["out.txt"]
  with files.atomic_open(target, "w") as f:
    f.write("new")
  assert target.read_text() == "new"


# ---------------------------------------------------------------------------- real data


def test_real_files(shared_data):
  ph2 = shared_data / "PH2" / "PH2 Dataset images" / "IMD003"
  image, info = image_io.read_image(ph2 / "IMD003_Dermoscopic_Image" / "IMD003.bmp")
  assert image.shape == (574, 765, 3) and info["rule"] == "uint8 / 255"
  mask = image_io.read_mask(ph2 / "IMD003_lesion" / "IMD003_lesion.bmp", image.shape)
  assert 0.05 < mask.mean() < 0.5

  drive = shared_data / "DRIVE" / "training"
  image, info = image_io.read_image(drive / "images" / "21_training.tif")  # LZW RGB
  assert image.shape == (584, 565, 3) and info["channels"] == "rgb"
  vessels = image_io.read_mask(drive / "1st_manual" / "21_manual1.gif", image.shape)
  fov = image_io.read_mask(drive / "mask" / "21_training_mask.gif", image.shape)
  assert 0.05 < vessels[fov].mean() < 0.2
  assert vessels[~fov].sum() < 50  # a few annotated pixels lie outside the FOV

  lung = shared_data / "lung_ct"
  name = sorted(os.listdir(lung / "2d_images"))[0]
  image, info = image_io.read_image(lung / "2d_images" / name)
  assert image.shape == (512, 512, 1) and "equal channels" in info["channels"]
  assert image_io.read_mask(lung / "2d_masks" / name, image.shape).any()
