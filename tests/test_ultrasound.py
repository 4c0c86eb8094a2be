"""Ultrasound: the scan region, masks stored as JPEG, de-speckling, the "mass" object rule,
and `--dataset ultrasound` end to end on two shared images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from sgscn_jax.data import image_io, scan_region, speckle
from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation import masses
from sgscn_jax.evaluation.objects import ObjectConfig, extract_object

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ultrasound"


def _speckle(rng, shape, level):
  """Multiplicative, spatially correlated speckle around `level`."""
  from scipy import ndimage
  grains = ndimage.gaussian_filter(rng.exponential(1.0, shape), 1.0)
  return level * grains / grains.mean()


def _sector_image(rng, h=120, w=160):
  """A sector scan: a fan of speckled tissue on black, a dark mass in it, white text in the
  top-left margin and a yellow marker arrow in the tissue. Returns (rgb, fan, text, marker)."""
  yy, xx = np.mgrid[:h, :w]
  apex = (-30, w / 2)
  radius = np.hypot(yy - apex[0], xx - apex[1])
  angle = np.degrees(np.arctan2(xx - apex[1], yy - apex[0]))
  fan = (radius > 40) & (radius < 145) & (np.abs(angle) < 35)
  tissue = np.clip(_speckle(rng, (h, w), 0.45), 0, 1)
  grey = np.where(fan, tissue, 0.0)
  mass = np.hypot(yy - 70, xx - 80) < 14
  grey = np.where(mass, 0.3 * grey, grey)
  text = np.zeros((h, w), bool)
  text[4:9, 3:6] = text[4:9, 8:11] = text[4:5, 3:11] = True   # a small "TT" in the margin
  grey = np.where(text, 0.95, grey)
  rgb = np.repeat(grey[..., None], 3, -1)
  marker = np.zeros((h, w), bool)
  marker[40:46, 100:112] = True
  rgb[marker] = (0.95, 0.9, 0.1)
  return rgb.astype(np.float32), fan, text, marker


def test_scan_region_leaves_out_the_frame_the_text_and_the_marker():
  rgb, fan, text, marker = _sector_image(np.random.default_rng(0))
  region = scan_region.find_scan_region(rgb)
  assert region.marks[marker].all() and region.marks[text].all()
  assert not region.valid[marker].any() and not region.valid[text].any()
  outside = ~fan & ~text
  # the black above and beside the fan (each column's dark run from the top) is frame; the
  # black below the fan's lower arc has the fan above it: not frame (scanned, never object)
  yy, xx = np.mgrid[:120, :160]
  above = outside & (np.cumsum(fan, 0) == 0)
  assert region.frame[above].mean() > 0.97
  assert not region.frame[outside & ~above].any()
  assert region.valid[fan & ~region.marks].mean() > 0.99   # the fan is scan region
  assert region.valid[fan].mean() > 0.95
  # the dark mass inside the fan stays scan region (holes of the region are filled)
  assert region.valid[np.hypot(yy - 70, xx - 80) < 14].all()
  # the marks are painted over with nearby tissue, nothing else changes
  g = scan_region.grey(rgb)
  filled = scan_region.fill_outside(g, region.marks)
  assert np.array_equal(filled[~region.marks], g[~region.marks])
  assert filled[marker].max() < 0.9


def test_a_grey_image_without_frame_or_marks_is_all_scan_region():
  g = np.clip(_speckle(np.random.default_rng(1), (64, 80), 0.4), 0.05, 0.7).astype(np.float32)
  region = scan_region.find_scan_region(g)
  assert region.valid.all() and not region.frame.any() and not region.marks.any()


def test_a_jpeg_mask_is_read_at_half_range_and_warned_about(tmp_path, capsys):
  rng = np.random.default_rng(2)
  (tmp_path / "images").mkdir()
  (tmp_path / "masks").mkdir()
  yy, xx = np.mgrid[:96, :96]
  truth = np.hypot(yy - 48, xx - 40) < 20
  grey = np.clip(_speckle(rng, (96, 96), 0.5) * np.where(truth, 0.4, 1.0), 0, 1)
  iio.imwrite(tmp_path / "images" / "a.png", np.repeat((255 * grey[..., None]), 3, -1)
              .astype(np.uint8))
  iio.imwrite(tmp_path / "masks" / "a.jpg", (255 * truth).astype(np.uint8), quality=75)
  raw = iio.imread(tmp_path / "masks" / "a.jpg")
  assert ((raw > 0) & (raw < 255)).mean() > 0.005        # JPEG rings the edge
  mask, between = image_io.read_lossy_mask(tmp_path / "masks" / "a.jpg")
  assert np.array_equal(mask, raw > 127) and between > 0.005
  assert (raw > 0).sum() > mask.sum()                     # > 0 would grow the mask
  assert np.mean(mask != truth) < 0.01
  cases, load = list_dataset("ultrasound", str(tmp_path))
  record = load(cases[0])
  assert record.image.shape == (96, 96, 1)                # one grey channel
  assert np.array_equal(record.mask, raw > 127) and record.extra["valid"].all()
  err = capsys.readouterr().err
  assert f"masks in {tmp_path / 'masks'} are read at half range" in err
  assert object_prior("ultrasound") == {"profile": "mass", "polarity": "dark"}


def test_despeckle_keeps_shape_and_range_and_smooths():
  rng = np.random.default_rng(3)
  image = np.clip(_speckle(rng, (48, 40), 0.5), 0, 1)[..., None].astype(np.float32)
  assert np.array_equal(speckle.despeckle(image, "none"), image)
  for method in ("median", "nlm", "bilateral"):
    out = speckle.despeckle(image, method)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert np.diff(out[..., 0], axis=1).std() < 0.8 * np.diff(image[..., 0], axis=1).std()
  with pytest.raises(ValueError, match="despeckle must be one of"):
    speckle.despeckle(image, "wiener")


def _mass_and_shadow(rng, h=128, w=128):
  """A speckled image with a round dark mass above the centre and, beneath it, a darker
  acoustic shadow that runs down to the lower border; labels: 0 tissue, 1 mass, 2 shadow,
  3 a dark band along the top (subcutaneous fat)."""
  yy, xx = np.mgrid[:h, :w]
  mass = np.hypot(yy - 50, xx - 64) < 16
  shadow = (yy > 68) & (np.abs(xx - 64) < 18)
  band = yy < 12
  labels = np.select([mass, shadow, band], [1, 2, 3], 0)
  level = np.select([mass, shadow, band], [0.18, 0.12, 0.2], 0.55)
  image = np.clip(_speckle(rng, (h, w), 1.0) * level, 0, 1)[..., None].astype(np.float32)
  return labels, image, mass


def test_the_mass_rule_takes_the_compact_dark_mass_not_the_shadow_or_the_band():
  labels, image, mass = _mass_and_shadow(np.random.default_rng(4))
  found = extract_object(labels, image, ObjectConfig(profile="mass", polarity="dark"))
  overlap = 2 * (found.mask & mass).sum() / (found.mask.sum() + mass.sum())
  assert overlap > 0.9, found.reason
  # the mass's cluster is the object's (its boundary refined on the image may take a few
  # pixels of the tissue around it)
  assert 1 in list(found.foreground_ids) and found.reason.startswith("mass: ")
  # neither the shadow beneath it nor the band along the top is in the object
  assert (found.mask & (labels == 2)).sum() < 0.05 * found.mask.sum()
  assert not (found.mask & (labels == 3)).any()


def test_mass_candidates_are_each_hierarchy_region_once_and_scores_follow_the_formula():
  lookups = [np.arange(4), np.array([0, 1, 1, 2]), np.array([0, 0, 0, 1])]
  regions = masses.distinct_regions(lookups)
  assert [(lv, list(m)) for lv, m in regions] == [
      (0, [0]), (0, [1]), (0, [2]), (0, [3]), (1, [1, 2]), (2, [0, 1, 2])]
  # one square piece, darker than its ring by 0.5, in the middle of a 21 x 21 image
  x = np.full((21, 21), 0.8)
  piece = np.zeros((21, 21), bool)
  piece[8:13, 8:13] = True
  x[piece] = 0.3
  valid = np.ones_like(piece)
  where = masses.anatomy(x, valid)
  found, in_depth = masses.describe_piece(piece, x, where, spread=0.25, ring_width=2,
                                          where_mean=0.7)
  assert found.contrast == pytest.approx(0.5 / 0.25)
  assert found.above == pytest.approx(0.5 / 0.25)          # tissue above it
  assert found.darkness == pytest.approx((0.7 - 0.3) / 0.25)
  assert found.solidity == pytest.approx(1.0) and not found.touches_border
  assert found.row == pytest.approx(0.5) and found.col == pytest.approx(0.5)
  assert in_depth == 0.0 and not found.deep and not found.spans
  rule = masses.MassRule(area_power=0.5, centre_weight=4.0, reference_row=0.5,
                         darkness_weight=1.0, solidity_power=2.0, min_area=0.01)
  area = 25 / 441
  assert found.area == pytest.approx(area)
  expected = 2.0 * 1.0 ** 2 * area ** 0.5 * np.exp(0.0) * np.exp(1.0 * 1.6)
  assert masses.mass_score(found, in_depth, rule) == pytest.approx(expected)
  # off the reference point by a quarter of the width: exp(-4 d), d = 0.25 / half-diagonal
  moved = found._replace(col=0.75)
  d = 0.25 / (0.5 * np.hypot(1.0, 1.0))
  assert masses.mass_score(moved, in_depth, rule) == pytest.approx(expected * np.exp(-4 * d))
  assert found.elongation == pytest.approx(1.0)         # a square: its axes are equal
  assert masses.mass_score(found._replace(elongation=4.0), in_depth,
                           rule._replace(elongation_power=0.5)) == pytest.approx(expected / 2)
  # the factors: each anatomy flag multiplies by its penalty; the depth region and a layer
  # (touching both sides) score 0 under RULE-like penalties
  assert masses.mass_score(found._replace(top=True), 0.0, rule._replace(top_penalty=0.3)) == (
      pytest.approx(0.3 * expected))
  assert masses.mass_score(found._replace(deep=True), 0.0, rule._replace(deep_penalty=0.1)) == (
      pytest.approx(0.1 * expected))
  assert masses.mass_score(found, 0.9, rule) == 0.0
  assert masses.mass_score(found._replace(spans=True), 0.0, rule) == 0.0
  assert masses.mass_score(found._replace(area=0.005), 0.0, rule) == 0.0   # under min_area
  # a piece brighter than its ring is no candidate
  assert masses.describe_piece(~piece, x, where, 0.25, 2) is None


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ultrasound data not present")
def test_two_shared_ultrasound_images_run_end_to_end(tmp_path):
  images = tmp_path / "images"
  masks = tmp_path / "masks"
  images.mkdir()
  masks.mkdir()
  for name in ("12.jpg", "120.jpg"):   # 120 carries a yellow marker
    os.symlink(SHARED / "images" / name, images / name)
    os.symlink(SHARED / "masks" / name, masks / name)
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.segment", "--dataset=ultrasound",
       f"--data_dir={tmp_path}", f"--out_dir={out}", "--size=64", "--iterations=2",
       "--n_channels=8", "--despeckle=median"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {p.stem: json.loads(p.read_text()) for p in (out / "cases").glob("*.json")}
  assert sorted(rows) == ["12", "120"]
  assert rows["120"]["marks_fraction"] > 0 and rows["12"]["frame_fraction"] == 0
  for row in rows.values():
    assert 0 <= row["object.dice"] <= 1 and row["object_reason"].startswith("mass")
  run = json.loads((out / "run.json").read_text())
  assert run["options"]["despeckle"] == "median" and run["dataset"] == "ultrasound"


def test_busi_names_with_spaces_and_parentheses_find_their_masks(tmp_path):
  """BUSI's names as published: "benign (1).png" and "benign (1)_mask.png", with "benign
  (10)" beside it; 1-bit masks. Each image gets its own mask, read as stored."""
  (tmp_path / "images").mkdir()
  (tmp_path / "masks").mkdir()
  rng = np.random.default_rng(5)
  for n, size in ((1, 4), (10, 6)):
    grey = (rng.random((24, 32)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "images" / f"benign ({n}).png", np.repeat(grey[..., None], 3, -1))
    mask = np.zeros((24, 32), bool)
    mask[4:4 + size, 5:5 + size] = True
    iio.imwrite(tmp_path / "masks" / f"benign ({n})_mask.png", mask)
  cases, load = list_dataset("ultrasound", str(tmp_path), mask_pattern="{stem}_mask.png")
  assert [c.case_id for c in cases] == ["benign (1)", "benign (10)"]
  assert [load(c).mask.sum() for c in cases] == [16, 36]
