"""Volumes: 3D SGSCN, or the volume as independent 2D problems (slice mode), one per slice.

Two ways to segment a volume `[D, H, W, C_in]`, both with `segment_volume`:

* "3d": the same network, losses and loop as in 2D, with 3x3x3 kernels
  (`segment_one` on the volume): L_ss sums the finite differences of all three
  axes and L_cc measures compactness in physical units when `spacing` is given.
* "slices": each slice along `axis` is its own 2D problem with its own fresh network and
  key `fold_in(key, i)`; the slices are one `segment_batch` call (the batch design
  at one edge: `lax.map` on CPU, `vmap` on accelerators). Slice i's labels are its own
  argmax ids, so a structure's id changes from slice to slice unless the labels are made
  consistent (`consistent_slice_labels`).

Consistent labels (host side, NumPy): walking from the first slice to the last, each
slice's clusters are matched one-to-one to the previous slice's (already consistent)
labels by overlap, greedily: among all pairs (a, b) with n_ab = |{slice_i == a} n
{slice_{i-1} == b}| > 0, the largest n_ab is matched first (ties: lower a, then lower b),
then the next largest whose a and b are both still free, and so on. A cluster left
unmatched (it touches nothing free in the previous slice) gets a new id. A structure that
continues through the slices keeps its id; one that splits keeps its id on its largest
overlapping part. Without consistency each slice's ids are offset to be distinct from
every other slice's, so no two slices share a label by accident.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax.core.batching import segment_batch, segment_one
from sgscn_jax.core.loop import as_key, check_spacing
from sgscn_jax.data.decode import standardise  # noqa: F401 - part of this module's API
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import History, Segmentation
from sgscn_jax.volume import loss_terms, masked  # noqa: F401 - loss_terms registers its terms

MODES = ("3d", "slices")


def _renumber_by_first_appearance(labels: np.ndarray) -> tuple[np.ndarray, int]:
  """Ids mapped to 0..K-1 in order of first appearance (C order); returns (labels, K)."""
  ids, first, inverse = np.unique(labels.ravel(), return_index=True, return_inverse=True)
  rank = np.empty(len(ids), np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(ids))
  return rank[inverse].reshape(labels.shape).astype(np.int32), len(ids)


def match_by_overlap(current: np.ndarray, previous: np.ndarray) -> dict[int, int]:
  """One-to-one greedy matching of `current`'s labels to `previous`'s by overlap.

  Args:
    current, previous: non-negative int label maps of one shape (e.g. two slices).

  Returns:
    `{current label: previous label}` for every matched pair (see the module docstring:
    largest overlap first, ties to the lower current then lower previous id; only pairs
    with a positive overlap are matched).
  """
  current = np.asarray(current, np.int64).ravel()
  previous = np.asarray(previous, np.int64).ravel()
  width = int(previous.max()) + 1 if previous.size else 1
  pairs, counts = np.unique(current * width + previous, return_counts=True)
  a, b = pairs // width, pairs % width
  order = np.lexsort((b, a, -counts))  # last key first: overlap desc, then a, then b
  matched: dict[int, int] = {}
  taken: set[int] = set()
  for i in order:
    if int(a[i]) in matched or int(b[i]) in taken:
      continue
    matched[int(a[i])] = int(b[i])
    taken.add(int(b[i]))
  return matched


def consistent_slice_labels(labels) -> np.ndarray:
  """Relabels a stack of independently labelled slices `[D, H, W]` so that a structure
  keeps one id through the stack (module docstring). Returns int32 `[D, H, W]` with ids
  0..K-1 in order of first appearance."""
  labels = np.asarray(labels)
  if labels.ndim != 3:
    raise ValueError(f"labels must be [D, H, W] (slices first), got shape {labels.shape}")
  out = np.empty(labels.shape, np.int64)
  out[0], next_id = _renumber_by_first_appearance(labels[0])
  for i in range(1, labels.shape[0]):
    matched = match_by_overlap(labels[i], out[i - 1])
    ids = np.unique(labels[i])
    mapping = np.zeros(int(ids.max()) + 1, np.int64)
    for a in ids:
      if int(a) in matched:
        mapping[a] = matched[int(a)]
      else:
        mapping[a], next_id = next_id, next_id + 1
    out[i] = mapping[labels[i]]
  return _renumber_by_first_appearance(out)[0]


def distinct_slice_labels(labels) -> np.ndarray:
  """Offsets each slice's ids `[D, H, W]` so that no two slices share an id (int32)."""
  labels = np.asarray(labels, np.int64)
  sizes = labels.reshape(labels.shape[0], -1).max(axis=1) + 1
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  return _renumber_by_first_appearance(labels + offsets[:, None, None])[0]


def _mean_history(history: History) -> History:
  """Per-iteration mean over slices (slices that had stopped do not count)."""
  def mean(x):
    x = np.asarray(x, np.float64)
    valid = np.isfinite(x)
    total = np.where(valid, x, 0.0).sum(0)
    n = valid.sum(0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)
  labels = np.asarray(history.n_labels, np.float64)
  labels = np.where(labels < 0, np.nan, labels)
  mean_labels = mean(labels)
  n_labels = np.where(np.isnan(mean_labels), -1, np.round(mean_labels)).astype(np.int32)
  return History(total=mean(history.total), terms={k: mean(v) for k, v in history.terms.items()},
                 n_labels=n_labels)


def segment_slices(key, volume, config: Config = Config(), *, spacing=None, axis: int = 0,
                   consistent: bool = True, batching: Optional[str] = None) -> Segmentation:
  """Segments every slice of `volume` `[D, H, W, C_in]` along `axis` as its own 2D image.

  Args:
    key: PRNG key; slice i uses `fold_in(key, i)`.
    volume: `[D, H, W, C_in]` float.
    config: static, as for `segment_one` (3x3 kernels: each slice is a 2D problem).
    spacing: optional `(dz, dy, dx)`; each slice gets the spacing of its two axes.
    axis: the slicing axis (0, 1 or 2).
    consistent: match labels between neighbouring slices (`consistent_slice_labels`); if
      false, each slice's ids are made distinct (`distinct_slice_labels`).
    batching: passed to `segment_batch` (None: its default).

  Returns:
    A `Segmentation` of the volume: labels `[D, H, W]` int32 (0..K-1, NumPy), n_labels K,
    iterations = the most any slice ran, finite = every slice finite, history = the
    per-iteration mean over the slices still running (n_labels: per-slice mean, rounded).
  """
  volume = np.asarray(volume, np.float32)
  if volume.ndim != 4:
    raise ValueError(f"volume must be [D, H, W, C_in], got shape {volume.shape}")
  if axis not in (0, 1, 2):
    raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
  slices = np.moveaxis(volume, axis, 0)
  key = as_key(key)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(slices.shape[0]))
  plane_spacing = None
  if spacing is not None:
    spacing = check_spacing(spacing, 3)
    plane_spacing = np.delete(np.asarray(spacing), axis)
  seg = segment_batch(keys, slices, config, batching=batching, spacing=plane_spacing)
  seg = jax.device_get(seg)
  per_slice = np.asarray(seg.labels)
  labels = consistent_slice_labels(per_slice) if consistent else distinct_slice_labels(per_slice)
  labels = np.moveaxis(labels, 0, axis)
  return Segmentation(labels=labels, n_labels=np.int32(labels.max() + 1),
                      iterations=np.int32(np.max(seg.iterations)),
                      finite=np.bool_(np.all(seg.finite)), history=_mean_history(seg.history))


def segment_volume(key, volume, config: Config = Config(), *, mode: str = "3d", spacing=None,
                   axis: int = 0, consistent: bool = True,
                   standardised: bool = True, mask=None) -> Segmentation:
  """Segments a volume `[D, H, W, C_in]` in `mode` "3d" (`segment_one`, 3x3x3
  kernels) or "slices" (`segment_slices`); see the module docstring.

  With a foreground `mask` `[D, H, W]` bool (`data.foreground`, or a data set's own), the
  voxels outside it take label 0 and the clusters inside are renumbered 1..K
  (`volume.masked.labels_with_outside`); the network still sees the whole volume (its losses
  are SGSCN's, over every voxel), and the early stop counts the outside's cluster too.

  With `standardised` (the default) the network sees `standardise(volume)` (zero mean,
  unit variance per channel over the volume) instead of the [0, 1] intensities. On grey
  volumes this decides whether structures separate at all: with [0, 1] input most of the
  first layer's random filters respond with one sign everywhere and ReLU flattens them.
  Measured on a 12x24x24 two-ellipsoid volume (background 0.5, ellipsoids 0.1 and 0.9,
  noise 0.05, spacing 3x1x1, 16 channels, seeds 0-2): DSC of the dark ellipsoid 0.11,
  0.11, 0.11 with [0, 1] input (always merged with the background), 0.90, 0.87, 0.86
  standardised.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  if standardised:
    volume = standardise(volume)
  if mode == "3d":
    seg = segment_one(key, volume, config, spacing=spacing)
  else:
    seg = segment_slices(key, volume, config, spacing=spacing, axis=axis, consistent=consistent)
  if mask is None:
    return seg
  seg = jax.device_get(seg)
  labels = masked.labels_with_outside(np.asarray(seg.labels), mask)
  return seg._replace(labels=labels, n_labels=np.int32(labels.max() + 1))
