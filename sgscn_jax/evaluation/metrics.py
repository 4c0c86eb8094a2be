"""Segmentation scores and cluster selection (host side, NumPy).

Notation: A = predicted foreground, B = ground-truth foreground, both restricted to the
optional `valid` region (e.g. DRIVE's field of view: pixels outside it count for
nothing). TP = |A n B|, FP = |A \\ B|, FN = |B \\ A|. All scores are fractions (not %),
per image; averaging over images is the caller's job.

Empty sets (a deliberate, uniform rule): when A and B are both empty the prediction is
perfect (DSC = J = precision = recall = 1; HM = XOR = XOR/I = HD95 = 0). When exactly
one is empty the ratio scores are at their worst (DSC = J = 0; HM = 1) and a ratio whose
denominator is zero is `inf` rather than NaN, so that it can never be silently dropped
by `nanmean`: XOR = inf when B is empty, XOR/I = inf when TP = 0, HD95 = inf when A or
B is empty. Precision with A empty and recall with B empty are 0 (one set empty).

Which label of a label map is the prediction is `selection`'s business. Predictions are
never multiplied by a (dilated) ground truth.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

METRIC_NAMES = ("dice", "jaccard", "xor", "hammoude", "xor_over_intersection",
                "precision", "recall", "hd95")


# ------------------------------------------------------------------------------ helpers


def _binary(name: str, x: np.ndarray) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype == np.bool_:
    return x
  if not np.all((x == 0) | (x == 1)):
    raise ValueError(f"{name} must be boolean or 0/1, got values {np.unique(x)[:5]}...")
  return x.astype(bool)


def _masks(pred, gt, valid=None) -> tuple[np.ndarray, np.ndarray]:
  """Checks shapes and returns (A, B) = (pred & valid, gt & valid) as bool arrays."""
  pred, gt = _binary("pred", pred), _binary("gt", gt)
  if pred.shape != gt.shape:
    raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape")
  if valid is not None:
    valid = _binary("valid", valid)
    if valid.shape != gt.shape:
      raise ValueError(f"valid {valid.shape} and gt {gt.shape} differ in shape")
    pred, gt = pred & valid, gt & valid
  return pred, gt


def _counts(pred, gt, valid=None) -> tuple[int, int, int]:
  """(TP, FP, FN) inside `valid`."""
  a, b = _masks(pred, gt, valid)
  tp = int(np.count_nonzero(a & b))
  return tp, int(np.count_nonzero(a)) - tp, int(np.count_nonzero(b)) - tp


def _ratio(num: int, den: int, both_empty: float) -> float:
  """num / den, with 0/0 -> `both_empty` and x/0 (x > 0) -> inf."""
  if den == 0:
    return both_empty if num == 0 else float("inf")
  return num / den


# ------------------------------------------------------------------------ overlap scores


def dice(pred, gt, valid=None) -> float:
  """Dice similarity coefficient DSC = 2|A n B| / (|A| + |B|) = 2TP / (2TP + FP + FN).

  Args:
    pred, gt: bool (or 0/1) arrays of one shape, any rank.
    valid: optional bool array of that shape; only pixels inside it are scored.

  Returns:
    In [0, 1]; 1 when A and B are both empty, 0 when exactly one is.

  Examples:
    >>> import numpy as np
    >>> from sgscn_jax.evaluation import dice
    >>> pred = np.array([[1, 1, 0, 0]], bool)
    >>> gt = np.array([[1, 1, 1, 0]], bool)
    >>> dice(pred, gt)                        # 2 * 2 / (2 + 3)
    0.8
    >>> dice(pred, gt, valid=np.array([[1, 1, 0, 1]], bool))
    1.0
  """
  return FROM_COUNTS["dice"](*_counts(pred, gt, valid))


def jaccard(pred, gt, valid=None) -> float:
  """Jaccard index J = |A n B| / |A u B| = TP / (TP + FP + FN); 1 if both empty."""
  return FROM_COUNTS["jaccard"](*_counts(pred, gt, valid))


def hammoude(pred, gt, valid=None) -> float:
  """Hammoude distance HM = (|A u B| - |A n B|) / |A u B| = 1 - J, in [0, 1]; 0 if both empty.

  The bounded definition (Silveira et al. 2009). See `xor_over_intersection` for the
  unbounded candidate that SGSCN's HM > 100 % would need.
  """
  return FROM_COUNTS["hammoude"](*_counts(pred, gt, valid))


def xor_error(pred, gt, valid=None) -> float:
  """XOR error = |A xor B| / |B| = (FP + FN) / (TP + FN), unbounded (Hance et al. 1996).

  Returns:
    0 if A and B are both empty; inf if B is empty and A is not.
  """
  return FROM_COUNTS["xor"](*_counts(pred, gt, valid))


def xor_over_intersection(pred, gt, valid=None) -> float:
  """|A xor B| / |A n B| = (FP + FN) / TP, unbounded: an HM candidate that exceeds 1.

  Returns:
    0 if A and B are both empty; inf if they do not overlap (TP = 0) otherwise.
  """
  return FROM_COUNTS["xor_over_intersection"](*_counts(pred, gt, valid))


def _one_sided(tp: int, other: int, rest: int) -> float:
  """tp / (tp + other); 1 when every count is 0, 0 when only `rest` is non-zero."""
  if tp + other == 0:
    return 1.0 if rest == 0 else 0.0
  return tp / (tp + other)


# Every overlap score as a function of (TP, FP, FN): the formulas are written once, here.
FROM_COUNTS = {
    "dice": lambda tp, fp, fn: _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
    "jaccard": lambda tp, fp, fn: _ratio(tp, tp + fp + fn, 1.0),
    "hammoude": lambda tp, fp, fn: 1.0 - _ratio(tp, tp + fp + fn, 1.0),
    "xor": lambda tp, fp, fn: _ratio(fp + fn, tp + fn, 0.0),
    "xor_over_intersection": lambda tp, fp, fn: _ratio(fp + fn, tp, 0.0),
    "precision": lambda tp, fp, fn: _one_sided(tp, fp, fn),
    "recall": lambda tp, fp, fn: _one_sided(tp, fn, fp),
}


def precision(pred, gt, valid=None) -> float:
  """Precision = |A n B| / |A| = TP / (TP + FP); 1 if both empty, 0 if only A is empty."""
  return FROM_COUNTS["precision"](*_counts(pred, gt, valid))


def recall(pred, gt, valid=None) -> float:
  """Recall = |A n B| / |B| = TP / (TP + FN); 1 if both empty, 0 if only B is empty."""
  return FROM_COUNTS["recall"](*_counts(pred, gt, valid))


# ----------------------------------------------------------------------- boundary scores


def boundary(mask: np.ndarray) -> np.ndarray:
  """Pixels (voxels) of a mask of any rank with at least one face neighbour outside it
  (4-neighbours in 2D, 6 in 3D; outside the array counts as outside the mask), bool."""
  mask = np.asarray(mask, bool)
  inner = np.pad(mask, 1, constant_values=False)
  centre = tuple(slice(1, -1) for _ in range(mask.ndim))
  eroded = inner[centre].copy()
  for axis in range(mask.ndim):
    for shift in (slice(None, -2), slice(2, None)):
      eroded &= inner[centre[:axis] + (shift,) + centre[axis + 1:]]
  return mask & ~eroded


def _first_axis_distance(features: np.ndarray) -> np.ndarray:
  """Index distance along axis 0 from each pixel to the nearest feature pixel on its line
  (all other indices equal), float64 of `features`' shape (inf on a line without one)."""
  n = features.shape[0]
  index = np.arange(n, dtype=np.float64).reshape((n,) + (1,) * (features.ndim - 1))
  above = np.maximum.accumulate(np.where(features, index, -np.inf), axis=0)
  below = np.minimum.accumulate(np.where(features, index, np.inf)[::-1], axis=0)[::-1]
  return np.minimum(index - above, below - index)


def _fold_axis(g2: np.ndarray, axis: int, step: float, chunk: int = 1 << 22) -> np.ndarray:
  """Exact squared distance after adding `axis`: out[..., i, ...] =
  min_j g2[..., j, ...] + (step (i - j))^2, computed in chunks of `chunk` numbers."""
  g2 = np.moveaxis(g2, axis, -1)
  n = g2.shape[-1]
  flat = g2.reshape(-1, n)
  offsets = (step * (np.arange(n)[:, None] - np.arange(n)[None, :])) ** 2  # [i, j]
  out = np.empty_like(flat)
  rows = max(1, chunk // (n * n))
  for start in range(0, len(flat), rows):
    block = flat[start:start + rows]
    out[start:start + rows] = (block[:, None, :] + offsets[None]).min(axis=-1)
  return np.moveaxis(out.reshape(g2.shape), -1, axis)


def _directed_distances(points: np.ndarray, features: np.ndarray,
                        spacing: Sequence[float], chunk: int = 1 << 22) -> np.ndarray:
  """Exact Euclidean distance from each of `points` `[N, r]` to the nearest `features` pixel.

  Separable (no SciPy): g = squared distance along axis 0 (scaled by s_0), then for each
  further axis a < r-1 the whole grid is folded, g(.., i_a, ..) = min_j g(.., j, ..) +
  (s_a (i_a - j))^2; the last axis is folded only at the points. In 2D this is
  d(y, x)^2 = min_x' (s_y g_col[y, x'])^2 + (s_x (x - x'))^2. Cost
  O(P sum_{0<a<r-1} n_a + N n_{r-1}).
  """
  rank = features.ndim
  g2 = (_first_axis_distance(features) * float(spacing[0])) ** 2
  for axis in range(1, rank - 1):
    g2 = _fold_axis(g2, axis, float(spacing[axis]), chunk)
  last = features.shape[-1]
  cols = np.arange(last, dtype=np.float64)
  step_last = float(spacing[-1])
  out = np.empty(len(points), np.float64)
  step = max(1, chunk // last)
  for start in range(0, len(points), step):
    p = points[start:start + step]
    lines = g2[tuple(p[:, a] for a in range(rank - 1))]  # [n, last]
    d2 = lines + ((p[:, -1:] - cols[None, :]) * step_last) ** 2
    out[start:start + step] = np.sqrt(d2.min(axis=1))
  return out


def hausdorff95(pred, gt, valid=None, spacing: Sequence[float] | None = None,
                percentile: float = 95.0) -> float:
  """95th-percentile symmetric Hausdorff distance between the *boundaries* of A and B.

  With dA, dB the boundary pixels (voxels) of A and B (`boundary`) and d(p, S) the
  Euclidean distance from p to the nearest pixel of S, in units of `spacing` (pixels by
  default; mm for a volume with its voxel size):
  HD95 = max(P95{d(p, dB) : p in dA}, P95{d(q, dA) : q in dB}), P95 being NumPy's
  linearly interpolated 95th percentile (the convention of MedPy and MONAI).

  Args:
    pred, gt, valid: masks of any rank >= 1 as for `dice`; A and B are clipped to `valid`
      first, so the edge of `valid` can be a boundary.
    spacing: pixel size per axis, e.g. (dy, dx) or (dz, dy, dx); None: all 1.
    percentile: 95 by default; 100 gives the classical Hausdorff distance.

  Returns:
    0 if A and B are both empty; inf if exactly one is empty.
  """
  a, b = _masks(pred, gt, valid)
  if a.ndim < 1:
    raise ValueError(f"hausdorff95 takes masks of rank >= 1, got shape {a.shape}")
  spacing = (1.0,) * a.ndim if spacing is None else tuple(float(s) for s in spacing)
  if len(spacing) != a.ndim:
    raise ValueError(f"spacing {spacing} needs one entry per axis of {a.shape}")
  if not a.any() and not b.any():
    return 0.0
  if not a.any() or not b.any():
    return float("inf")
  # Distances between the two boundaries never leave the bounding box of A u B.
  where = np.argwhere(a | b)
  box = tuple(slice(lo, hi + 1) for lo, hi in zip(where.min(0), where.max(0)))
  edge_a, edge_b = boundary(a)[box], boundary(b)[box]
  d_ab = _directed_distances(np.argwhere(edge_a), edge_b, spacing)
  d_ba = _directed_distances(np.argwhere(edge_b), edge_a, spacing)
  return float(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile)))


def all_metrics(pred, gt, valid=None, spacing: Sequence[float] | None = None) -> dict[str, float]:
  """Every score of this module for one image or volume, keyed by `METRIC_NAMES`
  (fractions; `hd95` in units of `spacing`, pixels by default)."""
  counts = _counts(pred, gt, valid)
  scores = {name: score(*counts) for name, score in FROM_COUNTS.items()}
  scores["hd95"] = hausdorff95(pred, gt, valid, spacing)
  return {name: float(scores[name]) for name in METRIC_NAMES if name in scores}
