"""The mask-free object step (sgscn_jax.evaluation.objects) on hand-built label maps.

Each synthetic case is a label map plus the image it was painted from (one colour per
cluster); the truth is used only to score the result, never passed to the step.

No timing here (speed is measured by `studies/object_step.py`, which prints the object
step's seconds per image: 0.06-0.09 s on PH2 and the lung CT slices, docs/OBJECTS.md).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

pytest.importorskip("skimage")

from scipy import ndimage  # noqa: E402

from sgscn_jax.evaluation import hierarchy, regions  # noqa: E402
from sgscn_jax.evaluation.objects import ObjectConfig, extract_object  # noqa: E402

SKIN, RING, CORE = (0.85, 0.7, 0.6), (0.5, 0.35, 0.3), (0.25, 0.15, 0.1)


def _disc(shape, centre, radius):
  grid = np.indices(shape)
  return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def _dsc(a, b):
  return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def _paint(labels, colours, noise=0.0, seed=0):
  """Image `[*spatial, C]`: colour `colours[label]` plus Gaussian noise of std `noise`."""
  image = np.asarray(colours, np.float64)[labels]
  rng = np.random.default_rng(seed)
  return np.clip(image + noise * rng.normal(size=image.shape), 0, 1)


def _framed(labels, frame_id):
  """`labels` with a one-pixel frame of its own cluster `frame_id` (as the CNN gives)."""
  out = labels.copy()
  out[regions.border_ring(labels.shape)] = frame_id
  return out


def _voronoi(shape, k, seed):
  """A label map of `k` Voronoi cells of random seed points (ids 0..k-1)."""
  rng = np.random.default_rng(seed)
  points = rng.uniform(0, 1, (k, len(shape))) * np.asarray(shape)
  grid = np.stack(np.indices(shape), -1)
  return np.argmin(((grid[..., None, :] - points) ** 2).sum(-1), -1)


# ------------------------------------------------------------------------ lesion profile


def test_core_and_ring_make_one_lesion():
  truth = _disc((64, 64), (31.5, 31.5), 16)
  labels = np.where(truth, 1, 0)
  labels[_disc((64, 64), (31.5, 31.5), 9)] = 2
  image = _paint(labels, [SKIN, RING, CORE], noise=0.02)
  result = extract_object(_framed(labels, 3), image)
  assert _dsc(result.mask, truth) > 0.95
  assert result.foreground_ids.tolist() == [1, 2]
  assert len(np.unique(result.regions)) == 3  # the finest level: every cluster
  coarse = extract_object(_framed(labels, 3), image, ObjectConfig(regions=2))
  assert len(np.unique(coarse.regions)) == 2 and _dsc(coarse.mask, truth) > 0.95
  assert "lesion" in result.reason


def test_hairs_are_not_the_lesion():
  shape = (64, 64)
  truth = _disc(shape, (30, 34), 14)
  labels = truth.astype(int)
  rows, cols = np.indices(shape)
  hairs = (rows == 20) | (cols == 40) | (rows - cols == 5) | (rows + cols == 70)
  labels[hairs] = 1
  image = _paint(labels, [SKIN, CORE], noise=0.02)
  rule = extract_object(_framed(labels, 2), image, ObjectConfig(rim_band=0))
  assert _dsc(rule.mask, truth) > 0.9
  assert not rule.mask[hairs & ~_disc(shape, (30, 34), 17)].any()
  # the rim step (8 px at 256 = 2 px here) may take a hair's root where it meets the
  # lesion, never the hair beyond its band
  result = extract_object(_framed(labels, 2), image)
  assert _dsc(result.mask, truth) > 0.9
  assert not result.mask[hairs & ~_disc(shape, (30, 34), 14 + 2 + 2)].any()


def test_lesion_touching_the_border():
  truth = _disc((64, 64), (32, 6), 18)
  labels = truth.astype(int)
  result = extract_object(_framed(labels, 2), _paint(labels, [SKIN, CORE], noise=0.02))
  assert _dsc(result.mask, truth) > 0.9


def test_vignette_corners_are_excluded():
  shape = (64, 64)
  truth = _disc(shape, (33, 30), 13)
  corners = ~_disc(shape, (31.5, 31.5), 40)
  labels = (truth | corners).astype(int)
  result = extract_object(_framed(labels, 2), _paint(labels, [SKIN, CORE], noise=0.02))
  assert _dsc(result.mask, truth) > 0.95
  assert not result.mask[corners].any()


def test_dark_vignette_ring_does_not_swallow_the_image():
  # the dermatoscope's dark circular edge closes a ring round the skin: filling the holes
  # of a border component would fill the whole image, so only components off the border
  # are filled before the central one is chosen
  shape = (64, 64)
  truth = _disc(shape, (30, 33), 16)
  field = _disc(shape, (31.5, 31.5), 30)
  labels = (truth | ~field).astype(int)
  image = _paint(labels, [SKIN, CORE], noise=0.02)
  dark = extract_object(_framed(labels, 2), image, ObjectConfig(polarity="dark"))
  assert _dsc(dark.mask, truth) > 0.95
  # auto polarity needs the field of view: border contact would favour the skin side
  inside = extract_object(_framed(labels, 2), image, valid=field)
  assert _dsc(inside.mask, truth) > 0.95


def test_thin_side_falls_back_to_the_raw_central_component():
  labels = np.zeros((48, 48), int)
  labels[23, 8:40] = labels[8:40, 23] = 1  # a one-pixel cross: gone after the opening
  # rim_band=0: the rim step reads the smoothed channel, which would thicken the line
  result = extract_object(labels, _paint(labels, [SKIN, CORE]),
                          ObjectConfig(analysis_size=None, rim_band=0))
  assert np.array_equal(result.mask, labels == 1)
  assert "raw central component" in result.reason


def test_polarity_and_regions_choose_the_region():
  truth = _disc((48, 48), (23.5, 23.5), 12)
  labels = np.where(truth, 1, 0)
  labels[_disc((48, 48), (23.5, 23.5), 6)] = 2
  image = _paint(labels, [SKIN, RING, CORE])
  bright = extract_object(labels, image, ObjectConfig(polarity="bright"))
  assert bright.foreground_ids.tolist() == [0]
  assert bright.mask.all()  # the skin side, its hole (the lesion) filled: the wrong prior
  core = extract_object(labels, image, ObjectConfig(polarity="dark", regions=3))
  assert core.foreground_ids.tolist() == [1, 2]  # the dark side: ring and core
  assert _dsc(core.mask, truth) > 0.95


def _rim_shared_with_skin():
  """A lesion (core cluster 2, dark rim cluster 1) whose rim cluster also holds a large
  bright stretch of skin along the top (rows < 14), not connected to the rim: (shape, truth,
  labels framed with cluster 5, image)."""
  shape = (64, 64)
  truth = _disc(shape, (35.5, 31.5), 14)
  labels = np.where(truth, 1, 0)
  labels[_disc(shape, (35.5, 31.5), 7)] = 2
  labels[:14] = 1                                          # skin in the rim's cluster
  colours = np.array([SKIN, RING, CORE])[labels]
  colours[:14] = (0.9, 0.8, 0.75)
  image = np.clip(colours + 0.01 * np.random.default_rng(0).normal(size=colours.shape), 0, 1)
  return shape, truth, _framed(labels, 5), image


def test_pieces_split_a_cluster_shared_by_rim_and_skin():
  """A cluster holding the lesion's dark rim and a large bright stretch of skin elsewhere
  (not connected to the rim): per cluster its mean is bright and the rim is lost; per
  connected piece the rim joins the core. The ids reported are the input clusters'."""
  shape, truth, labels, image = _rim_shared_with_skin()
  whole = extract_object(labels, image, ObjectConfig(polarity="dark", rim_band=0))
  split = extract_object(labels, image,
                         ObjectConfig(polarity="dark", pieces=True, rim_band=0))
  assert whole.foreground_ids.tolist() == [2] and _dsc(whole.mask, truth) < 0.5
  assert split.foreground_ids.tolist() == [1, 2] and _dsc(split.mask, truth) > 0.95
  assert not split.mask[:14].any()


def test_rim_step_brings_back_a_rim_decided_with_skin():
  """The same shared cluster as above, per cluster: the rim's pixels are on the dark side of
  the object channel's threshold, so the rim step (`rim_band` >= the rim's width, here at
  input size) grows the core over them, and not into the bright skin of the rim's cluster."""
  shape, truth, labels, image = _rim_shared_with_skin()
  config = ObjectConfig(polarity="dark", analysis_size=None, rim_band=8)
  grown = extract_object(labels, image, config)
  assert grown.foreground_ids.tolist() == [2]   # the clusters decided: still the core only
  assert _dsc(grown.mask, truth) > 0.95 and not grown.mask[:14].any()
  assert "rim: grew" in grown.reason
  short = extract_object(labels, image, dataclasses.replace(config, rim_band=3))
  core = _disc(shape, (35.5, 31.5), 7)
  assert _dsc(short.mask, _disc(shape, (35.5, 31.5), 10)) > 0.9 and short.mask[core].all()


def test_grow_into_against_hand_built_masks():
  shape = (48, 48)
  mask = _disc(shape, (24, 24), 5)
  allowed = _disc(shape, (24, 24), 9) | _disc(shape, (6, 6), 4)   # a rim and a far blob
  allowed[24, 24:47] = True                                         # a one-pixel hair
  grown = regions.grow_into(mask, allowed, band=6, opening_radius=1)
  assert grown[mask].all() and not grown[_disc(shape, (6, 6), 4)].any()
  assert not grown[24, 35:].any()                                   # the hair beyond the rim
  assert _dsc(grown, _disc(shape, (24, 24), 9)) > 0.97
  assert not (grown & ~ndimage.binary_dilation(mask, regions.ball(6, 2))).any()
  near = regions.grow_into(mask, allowed, band=2, opening_radius=1)
  assert _dsc(near, _disc(shape, (24, 24), 7)) > 0.9
  assert np.array_equal(regions.grow_into(mask, allowed, band=0, opening_radius=1), mask)
  hole = mask & ~_disc(shape, (24, 24), 2)                          # holes are filled
  assert np.array_equal(regions.grow_into(hole, np.zeros(shape, bool), 3, 1), mask)


def test_connected_pieces_against_scipy():
  labels = _voronoi((40, 50), 6, seed=3)
  labels[10:12] = 2                                        # cuts cells into pieces
  labels[0, 0] = -1
  pieces, parent = regions.connected_pieces(labels)
  assert pieces[0, 0] == -1
  for value in range(6):
    _, n = ndimage.label(labels == value)
    assert np.sum(parent == value) == n
  for piece in range(len(parent)):
    inside = pieces == piece
    assert np.all(labels[inside] == parent[piece])
    assert ndimage.label(inside)[1] == 1


def test_one_region_gives_no_object():
  result = extract_object(np.zeros((16, 16), int), np.full((16, 16, 3), 0.5))
  assert not result.mask.any() and "no object" in result.reason


def test_lesion_in_3d():
  shape = (12, 20, 20)
  truth = _disc(shape, (5.5, 9.5, 9.5), 5)
  labels = truth.astype(int)
  result = extract_object(labels, _paint(labels, [(0.8,), (0.2,)]),
                          ObjectConfig(analysis_size=None, opening_radius=1, frame=0))
  assert _dsc(result.mask, truth) > 0.9


# ------------------------------------------------------------------------- lungs profile


def _ct(shape=(96, 96), lung_id=0, body_radius=40):
  """Dark body disc on a bright outside, two bright lungs inside, a thin bright path from
  the left lung to the outside (outside cluster 0, body 1, lungs `lung_id`)."""
  lungs = (_ellipse(shape, (48, 31), (20, 10)) | _ellipse(shape, (48, 65), (20, 10)))
  labels = np.where(_disc(shape, (47.5, 47.5), body_radius), 1, 0)
  labels[48, :25] = 0
  labels[lungs] = lung_id
  colours = [(0.9,), (0.3,), (0.8,)]
  return labels, _paint(labels, colours, noise=0.02), lungs


def _ellipse(shape, centre, axes):
  grid = np.indices(shape)
  return sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes)) <= 1


@pytest.mark.parametrize("lung_id", [0, 2])
def test_lungs_inside_the_body(lung_id):
  labels, image, lungs = _ct(lung_id=lung_id)
  result = extract_object(_framed(labels, 3), image, ObjectConfig(profile="lungs"))
  assert _dsc(result.mask, lungs) > 0.9
  assert 0 in result.foreground_ids
  _, n = ndimage.label(result.mask)
  assert n == 2


def test_lungs_beside_a_scanner_table():
  """A dark table curve under the body, with outside air between: the body's hull is the
  body's alone, so that air is not taken for lung even when a bright path joins it to a
  lung (the hull of all tissue, table included, would enclose it)."""
  labels, image, lungs = _ct(shape=(112, 96), body_radius=36)
  table = np.zeros(labels.shape, bool)
  table[100:103, 4:92] = True
  labels[table] = 1
  labels[80:100, 46:50] = 0  # bright speckle joining the lungs to the air above the table
  image = _paint(labels, [(0.9,), (0.3,), (0.8,)], noise=0.02)
  result = extract_object(_framed(labels, 3), image, ObjectConfig(profile="lungs"))
  assert _dsc(result.mask, lungs) > 0.9, result.reason
  assert not result.mask[90:100].any() and "the body's convex hull" in result.reason


def test_lungs_when_the_body_fills_the_view():
  """auto takes the side of most border contact (the outside air's); with no outside air
  in view that is the body, so the data set's polarity must say which side the lungs are."""
  labels, image, lungs = _ct(body_radius=80)  # no outside air: the body touches the border
  result = extract_object(_framed(labels, 3), image,
                          ObjectConfig(profile="lungs", polarity="bright"))
  assert _dsc(result.mask, lungs) > 0.9 and "the bright side" in result.reason


# ----------------------------------------------------------------------- vessels profile


def test_vessels_stay_thin_and_inside_valid():
  shape = (64, 64)
  valid = _disc(shape, (31.5, 31.5), 28)
  rows, cols = np.indices(shape)
  vessels = ((cols == 20) | (rows == 33) | (np.abs(rows - cols) == 0)) & valid
  labels = np.where(vessels, 1, 0)
  labels[~valid] = 2
  labels[5, 5] = 1  # a speck outside the field of view
  labels[40, 45] = 1  # a one-pixel speck inside it
  image = _paint(labels, [(0.7, 0.4, 0.2), (0.35, 0.15, 0.05), (0.0, 0.0, 0.0)])
  result = extract_object(labels, image, ObjectConfig(profile="vessels"), valid=valid)
  assert np.array_equal(result.mask, vessels)
  assert result.foreground_ids.tolist() == [1]


# ------------------------------------------------------------------------ the hierarchy


@pytest.mark.parametrize("shape,k", [((48, 48), 9), ((8, 16, 16), 7)])
def test_hierarchy_is_nested_down_to_two(shape, k):
  labels = _voronoi(shape, k, seed=1) * 3 + 5  # ids need not be 0..K-1
  rng = np.random.default_rng(2)
  image = _paint(labels // 3 - 1, rng.uniform(0, 1, (k, 3)))
  levels = hierarchy.region_hierarchy(labels, image)
  counts = [len(np.unique(lv)) for lv in levels]
  assert counts == list(range(k, 1, -1))
  assert all(int(lv.max()) + 1 == c for lv, c in zip(levels, counts))
  # level 0 is the labels renumbered (a bijection)
  assert len(set(zip(labels.ravel(), levels[0].ravel()))) == k
  for fine, coarse in zip(levels, levels[1:]):
    assert len(set(zip(fine.ravel(), coarse.ravel()))) == len(np.unique(fine))
  assert hierarchy.level(levels, 3) is levels[-2]
  assert hierarchy.level(levels, 1) is levels[-1] and hierarchy.level(levels, 99) is levels[0]


def test_hierarchy_merges_closest_adjacent_pair():
  # stripes A(0.0) B(0.5) C(0.05): A and C are closest but not adjacent -> B+C first
  labels = np.repeat(np.repeat([[7, 3, 9]], 4, 0), 4, 1)
  image = _paint(np.searchsorted([3, 7, 9], labels), [(0.5,), (0.0,), (0.05,)])
  levels = hierarchy.region_hierarchy(labels, image)
  assert [lv[0, ::4].tolist() for lv in levels] == [[0, 1, 2], [0, 1, 1]]


def test_hierarchy_merge_order_and_disconnected_graph():
  # A(0) B(0.1) C(0.5) D(0.55) in a row: C+D, then A+B
  labels = np.repeat(np.arange(4)[None], 3, 0)
  levels = hierarchy.region_hierarchy(labels, _paint(labels, [(0.0,), (0.1,), (0.5,), (0.55,)]))
  assert [lv[0].tolist() for lv in levels] == [[0, 1, 2, 3], [0, 1, 2, 2], [0, 0, 1, 1]]
  # ignored columns (-1) cut every adjacency: the closest non-adjacent pair merges
  labels = np.array([[0, -1, 1, -1, 2]] * 3)
  image = _paint(np.maximum(labels, 0), [(0.0,), (0.2,), (1.0,)])
  levels = hierarchy.region_hierarchy(labels, image)
  assert levels[-1][0].tolist() == [0, -1, 0, -1, 1]


# ----------------------------------------------------------------- cluster statistics


def test_cluster_statistics_match_numpy():
  labels = np.zeros((10, 12), int)
  labels[2:6, 3:9] = 4
  labels[7:, :] = 9
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 1, (10, 12, 3))
  stats = hierarchy.cluster_statistics(labels, image, frame=0)
  assert stats.ids.tolist() == [0, 4, 9]
  ring = np.zeros((10, 12), bool)
  ring[[0, -1]] = ring[:, [0, -1]] = True
  centre = np.array([4.5, 5.5])
  for row, i in enumerate([0, 4, 9]):
    m = labels == i
    np.testing.assert_allclose(stats.size[row], m.mean())
    np.testing.assert_allclose(stats.mean[row], image[m].mean(0))
    np.testing.assert_allclose(stats.border_contact[row], (m & ring).sum() / ring.sum())
    centroid = np.argwhere(m).mean(0)
    np.testing.assert_allclose(stats.centrality[row],
                               1 - np.linalg.norm(centroid - centre) / np.linalg.norm(centre))
  # cluster 4 touches only cluster 0; cluster 0 touches 4 and 9
  np.testing.assert_allclose(stats.contrast[1], np.linalg.norm(stats.mean[1] - stats.mean[0]))
  n = stats.size[[1, 2]] / stats.size[[1, 2]].sum()
  around = n @ stats.mean[[1, 2]]
  np.testing.assert_allclose(stats.contrast[0], np.linalg.norm(stats.mean[0] - around))
  assert stats.border_contact[1] == 0 and stats.border_contact.sum() == pytest.approx(1)
  # a frame cluster vanishes and border contact is read just inside it
  framed = hierarchy.cluster_statistics(_framed(labels, 5), image, frame=1)
  assert framed.ids.tolist() == [0, 4, 9]
  inner = regions.border_ring((10, 12), 1)
  expected = [(labels[inner] == i).mean() for i in (0, 4, 9)]
  np.testing.assert_allclose(framed.border_contact, expected)


def test_compactness_in_2d_and_3d():
  labels = _disc((64, 64), (31.5, 31.5), 20).astype(int)
  labels[5, 2:60] = 2  # a thin line
  stats = hierarchy.cluster_statistics(labels, np.zeros((64, 64)), frame=0)
  assert stats.compactness[1] > 0.9 and stats.compactness[2] < 0.3
  stats3 = hierarchy.cluster_statistics(np.zeros((4, 4, 4), int), np.zeros((4, 4, 4)), frame=0)
  assert np.isnan(stats3.compactness).all() and stats3.size.tolist() == [1.0]


# ---------------------------------------------------------------------- post-processing


def test_fill_frame_copies_the_nearest_interior_label():
  labels = np.arange(30).reshape(5, 6)
  filled = regions.fill_frame(_framed(labels, 99), 1)
  assert filled[0, 0] == labels[1, 1] and filled[0, 3] == labels[1, 3]
  assert filled[4, 5] == labels[3, 4] and filled[2, 5] == labels[2, 4]
  assert np.array_equal(filled[1:-1, 1:-1], labels[1:-1, 1:-1])


def test_fill_holes_and_opening():
  ring = _disc((32, 32), (16, 16), 10) & ~_disc((32, 32), (16, 16), 4)
  assert np.array_equal(regions.fill_holes(ring), _disc((32, 32), (16, 16), 10))
  half = np.zeros((32, 32), bool)
  half[:, :10] = True
  half[16, 10:] = True  # a thin spur
  expected = half & (np.arange(32) < 10)
  expected[16, 10] = True  # covered by the disk centred at (16, 8), inside the block
  assert np.array_equal(regions.open_mask(half, 2), expected)


def test_central_component_prefers_centre_over_border():
  mask = _disc((64, 64), (31.5, 31.5), 8) | _disc((64, 64), (0, 0), 20)
  central = regions.central_component(mask)
  assert np.array_equal(central, _disc((64, 64), (31.5, 31.5), 8))
  # without the border penalty the larger corner blob wins on area * exp(-4 d)
  assert central.sum() < regions.central_component(mask, 0.0, 1.0).sum()
  assert not regions.central_component(np.zeros((8, 8), bool)).any()


def test_border_and_size_filters():
  mask = np.zeros((20, 20), bool)
  mask[0:4, 5:9] = mask[8:12, 8:12] = mask[15:17, 2:3] = True
  inner = regions.drop_border_components(mask)
  assert inner.sum() == 18 and inner[8:12, 8:12].all()
  largest = regions.largest_components(mask, 2, min_fraction=0.0)
  assert largest.sum() == 32 and not largest[15:17, 2].any()
  assert regions.largest_components(mask, 2, min_fraction=0.05).sum() == 0
  assert regions.drop_small_components(mask, 5).sum() == 32


# -------------------------------------------------------------- invariance and timing


@pytest.mark.parametrize("profile", ["lesion", "lungs"])
def test_permuting_label_ids_keeps_the_object(profile):
  if profile == "lesion":
    truth = _disc((64, 64), (31.5, 31.5), 16)
    labels = np.where(truth, 1, 0)
    labels[_disc((64, 64), (31.5, 31.5), 9)] = 2
    labels = _framed(labels, 3)
    image = _paint(regions.fill_frame(labels), [SKIN, RING, CORE], noise=0.02)
  else:
    labels, image, _ = _ct(lung_id=2)
  config = ObjectConfig(profile=profile)
  base = extract_object(labels, image, config)
  permutation = np.array([17, 4, 11, 8])
  moved = extract_object(permutation[labels], image, config)
  assert np.array_equal(base.mask, moved.mask) and base.mask.any()
  assert np.array_equal(base.regions, moved.regions)
  assert sorted(permutation[base.foreground_ids]) == moved.foreground_ids.tolist()


def _best_time(fn, repeats=5):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def test_config_is_checked():
  with pytest.raises(ValueError):
    ObjectConfig(profile="liver")
  with pytest.raises(ValueError):
    ObjectConfig(polarity="grey")
  with pytest.raises(ValueError):
    ObjectConfig(rim_band=-1)
  with pytest.raises(ValueError):
    ObjectConfig(channel="blue")
  assert ObjectConfig(channel="2").channel == "2"
