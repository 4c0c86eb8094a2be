"""Whole scanner images (issue 43): the scan region's parts on synthetic B-mode scanner
images (`data.synthetic_ultrasound`), and the mass rule's anatomy (depth, shadow, skin)."""


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


def _parts_labels(scan):
  """A label map of the synthetic scan's parts: 0 tissue, 1 mass, 2 shadow, 3 depth, 4 the
  subcutaneous band (rows 6-20 %), 5 the skin line (rows 4-6 %)."""
  p = scan.parts
  h, w = p["mass"].shape
  rows = np.repeat((np.arange(h) / h)[:, None], w, 1)
  return np.select([p["mass"], p["shadow"], p["depth"], (rows >= 0.06) & (rows < 0.20),
                    (rows >= 0.04) & (rows < 0.06)], [1, 2, 3, 4, 5], 0)


def _mass_object(scan, rule=None):
  from sgscn_jax.evaluation import masses
  from sgscn_jax.evaluation.objects import ObjectConfig, extract_object
  region = _region(scan)
  image = scan_region.fill_outside(scan_region.grey(scan.image), region.marks)[..., None]
  kept = masses.RULE
  masses.RULE = kept if rule is None else rule
  try:
    return extract_object(_parts_labels(scan), image,
                          ObjectConfig(profile="mass", polarity="dark"), valid=region.valid)
  finally:
    masses.RULE = kept


def _dsc(a, b):
  return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.mark.parametrize("size,level,depth_start", [(0.6, 0.25, 0.5), (0.8, 0.3, 0.5)])
def test_the_rule_takes_the_faint_mass_not_the_depth_region(size, level, depth_start):
  """A small, faint mass above a large dark depth region: the rule of object step <= 3
  (`masses.LEGACY`) took the depth (issue 43's failure); the B-mode rule never does."""
  from sgscn_jax.evaluation import masses
  scan = scanner_image(seed=1, mass_size=size, mass_level=level, depth_start=depth_start,
                       calipers=False, text=False, logo=False)
  p = scan.parts
  legacy = _mass_object(scan, masses.LEGACY)
  assert (legacy.mask & p["depth"]).sum() > 0.9 * legacy.mask.sum()
  found = _mass_object(scan)
  assert _dsc(found.mask, p["mass"]) > 0.9, found.reason
  assert not (found.mask & p["depth"]).any()


@pytest.mark.parametrize("size,level,depth_start", [(0.5, 0.25, 0.55), (0.6, 0.3, 0.6)])
def test_the_rule_takes_the_mass_not_its_posterior_shadow(size, level, depth_start):
  """A mass above its darker posterior shadow, which reaches the depth: the object is the
  mass; the shadow is at most a thin rim under it (the boundary's refinement reaches
  `refine_band // 4` rows below the piece)."""
  scan = scanner_image(seed=1, mass_size=size, mass_level=level, depth_start=depth_start,
                       calipers=False, text=False, logo=False)
  p = scan.parts
  found = _mass_object(scan)
  assert _dsc(found.mask, p["mass"]) > 0.8, found.reason
  assert (found.mask & p["shadow"]).sum() < 0.2 * found.mask.sum()


def test_the_skin_line_and_the_subcutaneous_layer_are_never_the_object():
  """With no dark mass at all (the mass as bright as tissue), nothing dark and compact is
  left: the layer across the image (touching both sides) and the skin line (touching the
  top) are not taken, nor the depth region."""
  scan = scanner_image(seed=5, mass_level=0.45, shadow=False, calipers=False, text=False,
                       logo=False)
  found = _mass_object(scan)
  h = found.mask.shape[0]
  assert not found.mask[: int(0.2 * h)].any() and not (found.mask & scan.parts["depth"]).any()

