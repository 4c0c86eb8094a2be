"""Diffusion condensation of one image's pixel embeddings into a coarse-to-fine hierarchy.

On n points x_i (embeddings scaled to the unit sphere, as CUTS does before condensing),
each carrying a weight w_i (the number of original points merged into it, 1 at first),
step t (t = 0, 1, ...) with bandwidth eps_t:

    K_ij = w_j exp(-|x_i - x_j|^2 / eps_t)             (Gaussian affinity, weighted)
    P    = D^-1 K,   D = diag(sum_j K_ij)               (the diffusion operator, rows sum to 1)
    x   <- P x                                          (every point moves to its local mean)
    points closer than `merge_distance` are merged      (weighted mean; weights added)
    eps_{t+1} = growth * eps_t

eps_0 is the median over points of the squared distance to the knn-th neighbour. The
partition of the original points after every step is recorded (`Condensation.labels`);
partitions only ever coarsen, so the number of clusters is non-increasing, and a level
is a run of steps with the same number of clusters. Its persistence is the run's length
in steps, i.e. the range of log(eps) over which the partition holds.

`condense` works on a subsample of an image's pixels; `nearest_points` gives every pixel
its nearest subsampled pixel in embedding space (chunked, so a 256x256 image needs a few
tens of MB), whose labels it takes at every level.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph


class Condensation(NamedTuple):
  labels: np.ndarray       # [T, n] int: each point's cluster after step t (0..K_t - 1)
  n_clusters: np.ndarray   # [T] int: K_t, non-increasing
  epsilon: np.ndarray      # [T] float: the bandwidth of step t


class Levels(NamedTuple):
  labels: np.ndarray       # [V, n] int: one partition per level, coarse to fine
  n_clusters: np.ndarray   # [V] int, increasing
  persistence: np.ndarray  # [V] int: steps each level lasted


def unit_rows(x: np.ndarray) -> np.ndarray:
  """Rows of `x` `[n, L]` scaled to unit length (zero rows stay zero)."""
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def squared_distances(x: np.ndarray) -> np.ndarray:
  """`[m, m]` |x_i - x_j|^2 (clipped at 0)."""
  sq = np.sum(x * x, 1)
  return np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)


def initial_bandwidth(x: np.ndarray, knn: int) -> float:
  """The median over points of the squared distance to the knn-th nearest other point."""
  d2 = squared_distances(x)
  k = min(knn, len(x) - 1)
  if k < 1:
    return 1.0
  kth = np.partition(d2, k, axis=1)[:, k]
  eps = float(np.median(kth))
  return eps if eps > 0 else 1e-6


def _merge(x: np.ndarray, w: np.ndarray, distance: float) -> tuple:
  """(merged points, weights, old -> new index `[m]`): connected components of the graph
  |x_i - x_j| < distance, each replaced by its weighted mean."""
  close = squared_distances(x) < distance ** 2
  count, component = csgraph.connected_components(sparse.csr_matrix(close), directed=False)
  if count == len(x):
    return x, w, np.arange(len(x))
  weights = np.bincount(component, w, minlength=count)
  sums = np.stack([np.bincount(component, w * x[:, j], minlength=count)
                   for j in range(x.shape[1])], 1)
  return sums / weights[:, None], weights, component


def condense(x: np.ndarray, *, knn: int = 10, growth: float = 1.15,
             merge_distance: float = 0.02, max_steps: int = 400) -> Condensation:
  """Diffusion condensation of `x` `[n, L]` (module docstring) until one point is left or
  `max_steps` steps; step 0 is the partition after merging coincident points."""
  points = unit_rows(x)
  weights = np.ones(len(points))
  owner = np.arange(len(points))
  points, weights, remap = _merge(points, weights, merge_distance)
  owner = remap[owner]
  eps = initial_bandwidth(points, knn) if len(points) > 1 else 1.0
  labels, counts, epsilons = [owner.copy()], [len(points)], [eps]
  for _ in range(max_steps):
    if len(points) == 1:
      break
    d2 = squared_distances(points)
    kernel = np.exp(-(d2 - d2.min(1, keepdims=True)) / eps) * weights[None, :]
    points = (kernel / kernel.sum(1, keepdims=True)) @ points
    points, weights, remap = _merge(points, weights, merge_distance)
    owner = remap[owner]
    eps *= growth
    labels.append(owner.copy())
    counts.append(len(points))
    epsilons.append(eps)
  return Condensation(np.stack(labels), np.asarray(counts), np.asarray(epsilons))


def levels(c: Condensation, *, min_clusters: int = 2, max_clusters: int = 20,
           max_levels: int = 12) -> Levels:
  """The distinct partitions with `min_clusters`..`max_clusters` clusters, each with its
  persistence; if more than `max_levels`, the most persistent ones (ties: coarser); returned
  coarse to fine. Empty (V = 0) when the condensation never passed through that range."""
  keep = {}
  for t, k in enumerate(c.n_clusters):
    k = int(k)
    if min_clusters <= k <= max_clusters:
      first, steps = keep.get(k, (t, 0))
      keep[k] = (first, steps + 1)
  chosen = sorted(keep, key=lambda k: (-keep[k][1], k))[:max_levels]
  chosen.sort()
  n = c.labels.shape[1]
  if not chosen:
    return Levels(np.zeros((0, n), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
  return Levels(np.stack([_dense(c.labels[keep[k][0]]) for k in chosen]),
                np.asarray(chosen), np.asarray([keep[k][1] for k in chosen]))


def _dense(labels: np.ndarray) -> np.ndarray:
  return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def persistent_level(lv: Levels) -> int:
  """Index of the level that lasts the most steps (ties: the coarser); -1 if none."""
  if len(lv.n_clusters) == 0:
    return -1
  return int(np.lexsort((lv.n_clusters, -lv.persistence))[0])


def nearest_points(z: np.ndarray, points: np.ndarray, chunk: int = 8192) -> np.ndarray:
  """For each row of `z` `[N, L]`, the index of its nearest row of `points` `[n, L]`
  (both scaled to unit length first, so nearest = largest dot product); `[N]` int."""
  z, points = unit_rows(z).astype(np.float32), unit_rows(points).astype(np.float32)
  out = np.empty(len(z), np.int64)
  for s in range(0, len(z), chunk):
    out[s:s + chunk] = np.argmax(z[s:s + chunk] @ points.T, axis=1)
  return out
