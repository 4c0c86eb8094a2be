"""Per-cluster statistics and the coarse-to-fine region hierarchy of a label map.

The hierarchy merges, one pair per level, the two adjacent regions of least Ward cost on a
feature (the object step passes its object channel), down to 2 regions: every level is a
segmentation, and the levels are nested.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from skimage import measure

from sgscn_jax.evaluation.regions import as_channels, border_ring, fill_frame


class ClusterStats(NamedTuple):
  """One row per cluster id present (ascending ids); arrays `[K]`, `mean` `[K, C]`."""
  ids: np.ndarray
  size: np.ndarray
  mean: np.ndarray
  centrality: np.ndarray
  border_contact: np.ndarray
  compactness: np.ndarray
  contrast: np.ndarray



def dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(dense `[*spatial]`, ids `[K]`): ids renumbered 0..K-1 in order of first appearance
  (raster order), so that the numbering does not depend on the ids' values; -1 kept."""
  flat = labels.ravel()
  valid = flat >= 0
  ids, first, inverse = np.unique(flat[valid], return_index=True, return_inverse=True)
  order = np.argsort(first, kind="stable")
  rank = np.empty(len(ids), np.int64)
  rank[order] = np.arange(len(ids))
  dense = np.full(flat.shape, -1, np.int64)
  dense[valid] = rank[inverse.ravel()]
  return dense.reshape(labels.shape), ids[order]


def region_sums(dense: np.ndarray, image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel counts `[k]` and colour sums `[k, C]` of the regions 0..k-1 of `dense`."""
  valid = dense >= 0
  idx = dense[valid]
  counts = np.bincount(idx, minlength=k).astype(np.float64)
  sums = np.stack([np.bincount(idx, image[..., c][valid], minlength=k)
                   for c in range(image.shape[-1])], -1)
  return counts, sums


def adjacency(dense: np.ndarray, k: int) -> np.ndarray:
  """`[k, k]` bool: regions sharing a face (4-neighbours in 2D); ignored pixels never."""
  adjacent = np.zeros((k, k), bool)
  for a in range(dense.ndim):
    lo = dense.take(np.arange(dense.shape[a] - 1), axis=a)
    hi = dense.take(np.arange(1, dense.shape[a]), axis=a)
    touch = (lo != hi) & (lo >= 0) & (hi >= 0)
    adjacent[lo[touch], hi[touch]] = True
  return adjacent | adjacent.T


def cluster_statistics(labels: np.ndarray, image: np.ndarray, *, frame: int = 1) -> ClusterStats:
  """Per-cluster statistics of `labels` `[*spatial]` int over `image` `[*spatial, C]` in [0, 1].

  The frame (`frame` pixels) is filled first (`fill_frame`), so frame-only clusters vanish.
  With N = valid pixels, n_k = pixels of cluster k, m_k = its mean colour:
    size = n_k / N; mean = m_k;
    centrality = 1 - |c_k - o| / |o|, c_k the centroid, o = (shape - 1) / 2 the centre;
    border_contact = share of the ring `border_ring(shape, frame)` (just inside the frame);
    compactness = 4 pi n_k / P_k^2, P_k skimage's perimeter (2D; a disc ~1); NaN in 3D;
    contrast = |m_k - sum_j n_j m_j / sum_j n_j| over the clusters j adjacent to k (NaN if none).
  """
  labels = fill_frame(np.asarray(labels), frame)
  image = as_channels(image, labels.shape)
  dense, ids = dense_ids(labels)
  order = np.argsort(ids)
  ids, k = ids[order], len(ids)
  remap = np.append(np.argsort(order), -1)
  dense = remap[dense]
  counts, sums = region_sums(dense, image, k)
  mean = sums / np.maximum(counts, 1)[:, None]
  valid = dense >= 0
  centre = (np.asarray(labels.shape) - 1) / 2
  coords = np.stack([np.bincount(dense[valid], g[valid], minlength=k)
                     for g in np.indices(labels.shape)], -1) / np.maximum(counts, 1)[:, None]
  centrality = 1 - np.linalg.norm(coords - centre, axis=-1) / max(np.linalg.norm(centre), 1e-12)
  ring = border_ring(labels.shape, frame) & valid
  contact = np.bincount(dense[ring], minlength=k) / max(int(ring.sum()), 1)
  compactness = np.full(k, np.nan)
  if labels.ndim == 2:
    for prop in measure.regionprops(dense + 1):
      if prop.perimeter > 0:
        compactness[prop.label - 1] = 4 * np.pi * prop.area / prop.perimeter ** 2
  weights = adjacency(dense, k) * counts[None, :]
  total = weights.sum(1)
  around = weights @ mean / np.maximum(total, 1e-12)[:, None]
  contrast = np.where(total > 0, np.linalg.norm(mean - around, axis=-1), np.nan)
  return ClusterStats(ids, counts / max(counts.sum(), 1), mean, centrality, contact,
                      compactness, contrast)


# ----------------------------------------------------------------------- the hierarchy


def merge_sequence(counts: np.ndarray, sums: np.ndarray, adjacent: np.ndarray) -> list[np.ndarray]:
  """Lookups `[K]` (region -> level id), K regions down to 2 (see `region_hierarchy`).

  Counts n `[K]`, feature sums s `[K, C]`; the pair merged minimises Ward's cost
  n_i n_j / (n_i + n_j) |s_i/n_i - s_j/n_j|^2 (the increase of the within-region sum of
  squares), ties to the smallest (i, j); a merged region keeps its smallest member index."""
  k = len(counts)
  counts, sums, adjacent = counts.copy(), sums.copy(), adjacent.copy()
  owner, active = np.arange(k), np.ones(k, bool)
  upper = np.triu(np.ones((k, k), bool), 1)
  lookups = [np.arange(k)]
  while active.sum() > 2:
    mean = sums / np.maximum(counts, 1)[:, None]
    weight = counts[:, None] * counts[None] / np.maximum(counts[:, None] + counts[None], 1)
    cost = weight * np.sum(np.square(mean[:, None] - mean[None]), axis=-1)
    pairs = upper & active[:, None] & active[None]
    allowed = pairs & adjacent if (pairs & adjacent).any() else pairs
    i, j = divmod(int(np.where(allowed, cost, np.inf).argmin()), k)
    counts[i] += counts[j]
    sums[i] += sums[j]
    adjacent[i] |= adjacent[j]
    adjacent[:, i] = adjacent[i]
    adjacent[i, i], active[j] = False, False
    owner[owner == j] = i
    lookups.append((np.cumsum(active) - 1)[owner])
  return lookups


def region_hierarchy(labels: np.ndarray, image: np.ndarray) -> list[np.ndarray]:
  """Nested segmentations `[*spatial]` int from K regions down to 2 (one merge per level).

  level[0] is `labels` renumbered 0..K-1 in order of first appearance (raster order);
  level[i + 1] merges the two face-adjacent regions of level[i] of least Ward cost
  n_i n_j / (n_i + n_j) |m_i - m_j|^2 (m the regions' mean features, e.g. colours; ties
  to the earliest-appearing pair), or the cheapest non-adjacent pair once the adjacency
  graph has no edge left. Ward's cost is Otsu's criterion for regions: in one feature,
  the 2-region level splits the regions where the between-class variance is largest. A
  greedy loop on cluster-level sums (O(K^3) on K x K matrices, plus one lookup per level;
  ~5 ms at 256 x 256, K = 15). Negative labels stay -1. One level if K <= 2.
  """
  labels = np.asarray(labels)
  dense, ids = dense_ids(labels)
  counts, sums = region_sums(dense, as_channels(image, labels.shape), len(ids))
  lookups = merge_sequence(counts, sums, adjacency(dense, len(ids)))
  return [np.append(lookup, -1)[dense] for lookup in lookups]


def level(hierarchy: Sequence[np.ndarray], regions: int) -> np.ndarray:
  """The level of `hierarchy` with `regions` regions (clipped to the counts that exist)."""
  counts = [int(lv.max()) + 1 for lv in hierarchy]
  return hierarchy[counts.index(int(np.clip(regions, min(counts), max(counts))))]


