"""Tests of sgscn_jax.evaluation.metrics: hand-computed values, empty cases, properties,
selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sgscn_jax.evaluation import metrics as M
from sgscn_jax.evaluation import selection

INF = math.inf


def _square(shape, top, left, size):
  m = np.zeros(shape, bool)
  m[top:top + size, left:left + size] = True
  return m


# ---------------------------------------------------------------------- hand-computed


GT = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
PRED = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
# TP = 2, FP = 2, FN = 2, |A u B| = 6.
EXPECTED = {
    "dice": 4 / 8, "jaccard": 2 / 6, "hammoude": 4 / 6, "xor": 4 / 4,
    "xor_over_intersection": 4 / 2, "precision": 2 / 4, "recall": 2 / 4,
    # Boundary pixels are the blocks themselves; directed distances are [0, 0, 1, 1]
    # both ways, whose interpolated 95th percentile is 1.
    "hd95": 1.0,
}


def test_hand_computed_values():
  scores = M.all_metrics(PRED, GT)
  assert set(scores) == set(M.METRIC_NAMES)
  for name, value in EXPECTED.items():
    assert scores[name] == pytest.approx(value), name
  functions = {"dice": M.dice, "jaccard": M.jaccard, "hammoude": M.hammoude,
               "xor": M.xor_error, "xor_over_intersection": M.xor_over_intersection,
               "precision": M.precision, "recall": M.recall, "hd95": M.hausdorff95}
  for name, fn in functions.items():
    assert fn(PRED, GT) == pytest.approx(EXPECTED[name]), name


def test_hausdorff_of_two_points_and_spacing():
  a, b = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
  a[0, 0], b[3, 4] = True, True
  assert M.hausdorff95(a, b) == pytest.approx(5.0)
  assert M.hausdorff95(a, b, spacing=(2.0, 1.0)) == pytest.approx(math.sqrt(36 + 16))


def test_hausdorff_of_shifted_squares():
  gt = _square((30, 30), 5, 5, 10)
  pred = _square((30, 30), 5, 8, 10)
  assert M.hausdorff95(pred, gt, percentile=100) == pytest.approx(3.0)
  assert M.hausdorff95(gt, gt) == 0.0


# ------------------------------------------------------------------------- empty sets


EMPTY = np.zeros((4, 4), bool)
BOTH_EMPTY = {"dice": 1, "jaccard": 1, "hammoude": 0, "xor": 0, "xor_over_intersection": 0,
              "precision": 1, "recall": 1, "hd95": 0}
PRED_EMPTY = {"dice": 0, "jaccard": 0, "hammoude": 1, "xor": 1, "xor_over_intersection": INF,
              "precision": 0, "recall": 0, "hd95": INF}
GT_EMPTY = {"dice": 0, "jaccard": 0, "hammoude": 1, "xor": INF, "xor_over_intersection": INF,
            "precision": 0, "recall": 0, "hd95": INF}


@pytest.mark.parametrize("pred,gt,expected", [
    (EMPTY, EMPTY, BOTH_EMPTY), (EMPTY, GT, PRED_EMPTY), (GT, EMPTY, GT_EMPTY)])
def test_empty_cases(pred, gt, expected):
  assert M.all_metrics(pred, gt) == expected


def test_disjoint_sets():
  scores = M.all_metrics(_square((8, 8), 0, 0, 2), _square((8, 8), 5, 5, 2))
  assert scores["dice"] == 0 and scores["xor"] == 2 and scores["xor_over_intersection"] == INF
  assert np.isfinite(scores["hd95"])


# ---------------------------------------------------------------------- valid region


def test_valid_region_restricts_scoring():
  valid = np.zeros((4, 4), bool)
  valid[:, :2] = True  # PRED's right column and GT agree inside: A n V = {(0,1),(1,1)}
  pred_noisy = PRED.copy()
  pred_noisy[3, 3] = True  # outside the valid region: ignored
  scores = M.all_metrics(pred_noisy, GT, valid)
  assert scores["dice"] == pytest.approx(2 * 2 / (2 + 4))
  assert scores["recall"] == pytest.approx(0.5) and scores["precision"] == 1.0
  assert M.dice(pred_noisy, GT, np.ones_like(valid)) == M.dice(pred_noisy, GT)


def test_bad_inputs_rejected():
  with pytest.raises(ValueError, match="differ in shape"):
    M.dice(PRED, GT[:3])
  with pytest.raises(ValueError, match="boolean or 0/1"):
    M.dice(PRED.astype(int) * 2, GT)
  with pytest.raises(ValueError, match="differ in shape"):
    M.dice(PRED, GT, valid=np.ones((3, 3), bool))
  assert M.dice(PRED.astype(np.uint8), GT.astype(np.int64)) == 0.5


# ------------------------------------------------------------------------- properties


def _pairs(max_side=10):
  shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_side)
  return shapes.flatmap(lambda s: st.tuples(hnp.arrays(bool, s), hnp.arrays(bool, s)))


@settings(max_examples=150, deadline=None)
@given(_pairs())
def test_overlap_properties(pair):
  a, b = pair
  d, j = M.dice(a, b), M.jaccard(a, b)
  assert 0 <= j <= d <= 1
  assert d == pytest.approx(2 * j / (1 + j))
  assert d == M.dice(b, a) and j == M.jaccard(b, a)
  assert M.hammoude(a, b) == pytest.approx(1 - j) and 0 <= M.hammoude(a, b) <= 1
  assert M.precision(a, b) == M.recall(b, a)
  assert M.xor_error(a, b) >= 0
  xoi = M.xor_over_intersection(a, b)
  if j > 0:
    assert xoi == pytest.approx(1 / j - 1)
  elif a.any() or b.any():
    assert xoi == INF
  if b.any():
    assert M.xor_error(a, b) == pytest.approx(np.count_nonzero(a ^ b) / np.count_nonzero(b))


def _brute_hd95(a, b):
  ea, eb = np.argwhere(M.boundary(a)), np.argwhere(M.boundary(b))
  d = np.sqrt(((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1))
  return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


@settings(max_examples=80, deadline=None)
@given(_pairs(max_side=14))
def test_hausdorff_properties(pair):
  a, b = pair
  hd = M.hausdorff95(a, b)
  assert hd == M.hausdorff95(b, a) and hd >= 0
  if a.any() and b.any():
    assert hd == pytest.approx(_brute_hd95(a, b))
    assert M.hausdorff95(a, a) == 0.0
  assert M.hausdorff95(a, b, np.ones_like(a)) == hd


# -------------------------------------------------------------------------- selection


def test_largest_overlap_and_no_ground_truth_multiplication():
  labels = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [0, 2, 2, 1], [0, 0, 0, 1]])
  gt = np.zeros((4, 4), bool)
  gt[1:3, 1:3] = True
  gt[0, 2] = True
  assert selection.largest_overlap_cluster(labels, gt) == 2  # overlap 4 vs 1
  pred = selection.select(labels, "largest_overlap", gt)
  np.testing.assert_array_equal(pred, labels == 2)
  gt[:, 0] = True  # label 0 overlaps 4 too, but has 2 pixels outside gt (label 2: 0)
  assert selection.largest_overlap_cluster(labels, gt) == 2


def test_largest_overlap_tie_rules():
  labels = np.array([[3, 3, 5, 5], [3, 3, 5, 5], [7, 7, 7, 7]])
  gt = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]], bool)
  # overlaps: 3 -> 1, 5 -> 1, 7 -> 1; outside gt: 3 -> 3, 5 -> 3, 7 -> 3: lowest id.
  assert selection.largest_overlap_cluster(labels, gt) == 3
  gt[0, 0], gt[1, 1] = False, True  # label 3: overlap 1, outside 3
  labels[2, 3] = 5  # label 5: overlap 1, outside 4; label 7: overlap 1, outside 2
  assert selection.largest_overlap_cluster(labels, gt) == 7


def test_largest_overlap_with_valid_and_empty_gt():
  labels = np.array([[0, 0, 1], [0, 0, 2], [0, 0, 2]])
  valid = np.ones((3, 3), bool)
  valid[0, 2] = False  # label 1 lives only outside: not a candidate
  empty = np.zeros((3, 3), bool)
  assert selection.largest_overlap_cluster(labels, empty) == 1  # the smallest cluster
  assert selection.largest_overlap_cluster(labels, empty, valid) == 2
  with pytest.raises(ValueError, match="valid is empty"):
    selection.largest_overlap_cluster(labels, empty, empty)


def test_central_cluster():
  yy, xx = np.mgrid[:40, :60]
  labels = np.zeros((40, 60), np.int64)  # background
  labels[(yy - 20) ** 2 + (xx - 30) ** 2 < 100] = 4  # central disc
  labels[:6, :6] = 1  # a corner
  labels[20, 30] = 9  # a one-pixel speck at the very centre
  assert selection.central_cluster(labels) == 4
  assert selection.select(labels, "central").sum() == np.count_nonzero(labels == 4)
  assert selection.central_cluster(np.full((5, 5), 3)) == 3
  halves = np.zeros((10, 10), np.int64)
  halves[:, 5:] = 2
  assert selection.central_cluster(halves) == 0  # equal scores: lower id


def test_selection_errors():
  labels = np.zeros((4, 4), np.int64)
  with pytest.raises(ValueError, match="needs the ground truth"):
    selection.select(labels, "largest_overlap")
  with pytest.raises(ValueError, match="rule must be one of"):
    selection.select(labels, "biggest")
  with pytest.raises(ValueError, match="non-negative"):
    selection.central_cluster(labels - 1)
  with pytest.raises(ValueError, match="integers"):
    selection.largest_overlap_cluster(labels.astype(float), GT)


# ------------------------------------------------------------------------- volumes


def _brute_hd(a, b, spacing, percentile=95):
  s = np.asarray(spacing, np.float64)
  ea, eb = np.argwhere(M.boundary(a)) * s, np.argwhere(M.boundary(b)) * s
  d = np.sqrt(((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1))
  return max(np.percentile(d.min(1), percentile), np.percentile(d.min(0), percentile))


def test_boundary_in_3d_uses_the_six_face_neighbours():
  cube = np.zeros((5, 5, 5), bool)
  cube[1:4, 1:4, 1:4] = True
  edge = M.boundary(cube)
  assert edge.sum() == 27 - 1 and not edge[2, 2, 2]  # all but the centre voxel
  full = np.ones((3, 4, 5), bool)  # the array's edge is a boundary
  assert M.boundary(full).sum() == 3 * 4 * 5 - 1 * 2 * 3


@pytest.mark.parametrize("seed", range(6))
def test_hausdorff_in_3d_with_spacing_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  shape = tuple(rng.integers(3, 9, size=3))
  a = rng.random(shape) < 0.3
  b = rng.random(shape) < rng.uniform(0.05, 0.5)
  a[0, 0, 0] = b[-1, -1, -1] = True
  spacing = tuple(rng.uniform(0.3, 3.0, size=3))
  for q in (95, 100):
    assert M.hausdorff95(a, b, spacing=spacing, percentile=q) == pytest.approx(
        _brute_hd(a, b, spacing, q))
  assert M.hausdorff95(a, b) == pytest.approx(_brute_hd(a, b, (1, 1, 1)))


def test_hausdorff_of_two_voxels_in_millimetres():
  a = np.zeros((4, 6, 8), bool)
  b = a.copy()
  a[0, 0, 0], b[3, 4, 0] = True, True
  assert M.hausdorff95(a, b, spacing=(2.5, 1.0, 0.5)) == pytest.approx(math.hypot(7.5, 4.0))
  scores = M.all_metrics(a, b, spacing=(2.5, 1.0, 0.5))
  assert scores["dice"] == 0.0 and scores["hd95"] == pytest.approx(math.hypot(7.5, 4.0))


def test_central_cluster_in_3d():
  zz, yy, xx = np.mgrid[:12, :16, :16]
  labels = np.zeros((12, 16, 16), np.int64)
  labels[(zz - 6) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2 < 16] = 2
  labels[:3] = 1  # a slab at one end
  assert selection.central_cluster(labels) == 2
