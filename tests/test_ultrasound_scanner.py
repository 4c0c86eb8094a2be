"""Whole scanner images (issue 43): the scan region's parts on synthetic B-mode scanner
images (`data.synthetic_ultrasound`), and the mass rule's anatomy (depth, shadow, skin)."""

import time

import numpy as np
import pytest
from scipy import ndimage

from sgscn_jax.data import scan_region
from sgscn_jax.data.synthetic_ultrasound import scanner_image


def _region(scan):
  return scan_region.find_scan_region(scan.image)


def test_every_part_of_a_scanner_image_is_found():
  scan = scanner_image(seed=0)
  p = scan.parts
  region = _region(scan)
  assert region.frame[p["frame"]].mean() > 0.95           # the wedges beside the top
  for name in ("calipers", "ruler", "text", "logo"):      # drawn marks: left out
    assert region.marks[p[name]].all(), name
    assert not region.valid[p[name]].any(), name
  assert region.calipers[p["calipers"]].mean() > 0.7     # the two '+'
  # the dotted line's dots on the dark mass are found as calipers or as text (bright
  # specks on a dark ground): marks either way
  assert (region.calipers | region.text)[p["calipers"]].all()
  assert region.text[p["text"]].all()
  # tissue, mass and shadow are scanned; almost no tissue pixel is taken for a mark
  drawn = ndimage.binary_dilation(p["calipers"] | p["ruler"], iterations=3)
  for name in ("tissue", "mass", "shadow"):
    assert region.valid[p[name] & ~drawn].mean() > 0.995, name
  assert region.marks[p["tissue"]].mean() < 0.01
  # the depth region: the rows below the tissue, not the shadow, the mass or the tissue
  g = ndimage.gaussian_filter(scan_region.grey(scan.image), 2)
  depth = scan_region.depth_region(g, region.valid)
  assert depth[p["depth"] & region.valid].mean() > 0.95
  assert not depth[p["shadow"] | p["mass"] | p["tissue"]].any()


def test_the_calipers_are_painted_over_with_the_mass_around_them():
  scan = scanner_image(seed=1)
  region = _region(scan)
  g = scan_region.grey(scan.image)
  clean = scan_region.fill_outside(g, region.marks)
  inside = scan.parts["calipers"] & scan.parts["mass"]
  assert g[inside].min() > 0.8 and clean[inside].max() < 0.5
  assert np.array_equal(clean[~region.marks], g[~region.marks])


@pytest.mark.parametrize("part", ["frame", "calipers", "ruler", "text", "logo"])
def test_a_part_left_out_is_not_found(part):
  scan = scanner_image(seed=2, **{part: False})
  region = _region(scan)
  if part == "calipers":
    assert not region.calipers.any()
  if part == "text":   # the scale's ticks, the logo and the calipers' dots are text-like
    other = scan.parts["ruler"] | scan.parts["logo"] | scan.parts["calipers"]
    assert not (region.text & ~other).any()
  if part in ("frame", "ruler") and not scan.parts["frame"].any():
    assert region.frame.sum() <= scan.parts["ruler"].shape[0] * 6   # the strip at most
  assert region.marks[scan.parts["tissue"]].mean() < 0.01


def test_a_dark_cyst_at_the_side_and_the_dark_depth_are_not_frame():
  """An anechoic cyst touching the left edge and the black depth touching the bottom and
  the sides have tissue above them: scanned, not frame (the frame starts at the top)."""
  scan = scanner_image(seed=3, frame=False, ruler=False, text=False, logo=False,
                       calipers=False)
  g = scan_region.grey(scan.image).copy()
  yy, xx = np.mgrid[:g.shape[0], :g.shape[1]]
  cyst = np.hypot((yy - 60) / 14, xx / 18) <= 1
  g[cyst] = 0.0
  g[scan.parts["depth"]] = 0.0
  region = scan_region.find_scan_region(g)
  assert not region.frame.any()
  assert region.valid[cyst].all() and region.valid[scan.parts["depth"]].all()


def test_the_scan_region_of_a_512_px_scanner_image_takes_under_half_a_second():
  scan = scanner_image(seed=4, h=400, w=512)
  _region(scan)
  start = time.perf_counter()
  region = _region(scan)
  scan_region.depth_region(scan_region.grey(scan.image), region.valid)
  assert time.perf_counter() - start < 0.5
