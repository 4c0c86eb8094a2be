"""JULE's forward pass on the host (NumPy/SciPy): a k-NN affinity graph of the patch
embeddings, graph-degree linkage between clusters, and greedy merges.

Sample affinity (Yang et al. 2016, sec. 3.2; `affinity.lua` of jwyang/JULE.torch). For N points
x_i `[N, D]` and their K_s nearest neighbours NN(i) (self excluded):

    W_ij = exp(-|x_i - x_j|^2 / sigma^2)  if j in NN(i), else 0;
    sigma^2 = mean over i and j in NN(i) of |x_i - x_j|^2.

W is directed (j may be i's neighbour without i being j's).

Initial clusters: the connected components of the graph joining each point to its nearest
neighbour (JULE follows these chains point by point, cutting them after 50 steps; whole
components here).

Cluster affinity, graph-degree linkage (Zhang et al., ECCV 2012; JULE eq. 4). With n_i = |C_i|,

    A(C_i, C_j) = a(C_j -> C_i) / n_i^2 + a(C_i -> C_j) / n_j^2,
    a(C_i -> C_j) = sum_{m in C_i} (sum_{n in C_j} W_mn) (sum_{n in C_j} W_nm)
                  = 1^T W_{C_j,C_i} W_{C_i,C_j} 1.

In matrix form, with S `[N, K]` the cluster indicator, U = W S and V = W^T S `[N, K]`:
a(C_i -> C_j) = (S^T (U * V))_ij (`directed_affinity`). Merging C_b into C_a changes exactly:
U_:a += U_:b, V_:a += V_:b, the row a(C_a -> .) += a(C_b -> .) (a sum over members), and the
column a(. -> C_a) is recomputed from the new U_:a, V_:a in O(N): the merges below are exact,
not JULE's "fast" approximation (`-use_fast`).

Merge rule (JULE eq. 5): with A_i(1) >= A_i(2) >= ... the affinities of C_i to the other
clusters, C_i's score is

    s_i = A_i(1) + lambda / (K_c - 1) sum_{k=2}^{K_c} (A_i(1) - A_i(k))

(lambda = 1, K_c = 5 as in JULE; only A_i(1) when fewer than K_c other clusters remain); the
cluster with the highest score merges with its nearest C_i(1) (ties: lowest index). JULE's code
keeps A in one triangle and sorts its columns; the symmetric A of the paper's formula is used
here.

Unrolling (JULE sec. 3.3, `train.lua`): one period merges ceil(eta K) times (eta = 0.9 is
JULE's rate for non-face data), never below the target number of clusters.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph


def nearest_neighbours(x: np.ndarray, k: int, block: int = 1024):
  """The k nearest neighbours of every row of `x` `[N, D]` (itself excluded), by exact squared
  Euclidean distance (ties: lower index). Returns `(index [N, k] int64, d2 [N, k] float64)`."""
  x = np.asarray(x, np.float64)
  n = x.shape[0]
  k = min(k, n - 1)
  sq = np.sum(x * x, 1)
  index = np.empty((n, k), np.int64)
  dist = np.empty((n, k), np.float64)
  for start in range(0, n, block):
    rows = slice(start, min(n, start + block))
    d2 = np.maximum(sq[rows, None] + sq[None, :] - 2.0 * x[rows] @ x.T, 0.0)
    d2[np.arange(d2.shape[0]), np.arange(start, rows.stop)] = np.inf
    order = np.lexsort((np.broadcast_to(np.arange(n), d2.shape), d2), axis=1)[:, :k]
    index[rows] = order
    dist[rows] = np.take_along_axis(d2, order, 1)
  return index, dist


def sample_affinity(x: np.ndarray, k_s: int = 20):
  """`(W, nn1)`: the directed k-NN affinity `W` (scipy CSR `[N, N]`, module docstring) and
  each point's nearest neighbour `nn1` `[N]`."""
  index, d2 = nearest_neighbours(x, k_s)
  sigma2 = float(d2.mean()) if d2.size else 1.0
  sigma2 = sigma2 if sigma2 > 0 else 1.0
  n = x.shape[0]
  rows = np.repeat(np.arange(n), index.shape[1])
  w = sparse.csr_matrix((np.exp(-d2 / sigma2).ravel(), (rows, index.ravel())), shape=(n, n))
  return w, index[:, 0]


def initial_clusters(nn1: np.ndarray) -> np.ndarray:
  """Labels `[N]` 0..K-1: components of the nearest-neighbour graph i -- nn1(i)."""
  n = nn1.size
  graph = sparse.csr_matrix((np.ones(n), (np.arange(n), nn1)), shape=(n, n))
  _, labels = csgraph.connected_components(graph, directed=True, connection="weak")
  return labels.astype(np.int64)


def indicator(labels: np.ndarray, k: int) -> sparse.csr_matrix:
  n = labels.size
  return sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))


def directed_affinity(w: sparse.spmatrix, labels: np.ndarray, k: int) -> np.ndarray:
  """a(C_i -> C_j) `[K, K]` (module docstring), zero diagonal."""
  s = indicator(labels, k)
  u = np.asarray((w @ s).todense())
  v = np.asarray((w.T @ s).todense())
  a = np.asarray(s.T @ (u * v))
  np.fill_diagonal(a, 0.0)
  return a


def cluster_affinity(w: sparse.spmatrix, labels: np.ndarray, k: int) -> np.ndarray:
  """Graph-degree linkage A(C_i, C_j) `[K, K]`, symmetric, zero diagonal."""
  a = directed_affinity(w, labels, k)
  n = np.bincount(labels, minlength=k).astype(np.float64)
  return a.T / (n[:, None] ** 2) + a / (n[None, :] ** 2)


def merge_scores(top: np.ndarray, k_c: int = 5, lam: float = 1.0) -> np.ndarray:
  """s_i from each cluster's affinities sorted in descending order `top` `[K, m]` (-inf where
  fewer than m other clusters exist; module docstring): rows with fewer than K_c finite
  values score A_i(1) alone."""
  first = top[:, 0]
  if top.shape[1] < k_c or k_c < 2:
    return first
  finite = np.all(np.isfinite(top[:, :k_c]), 1)
  with np.errstate(invalid="ignore"):
    extra = lam / (k_c - 1) * np.sum(first[:, None] - top[:, 1:k_c], 1)
  return np.where(finite, first + np.where(finite, extra, 0.0), first)


class Agglomeration:
  """The merge state of one graph: labels, U, V, a(. -> .), A, each cluster's top K_c."""

  def __init__(self, w: sparse.spmatrix, labels: np.ndarray, k_c: int = 5, lam: float = 1.0):
    labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    k = int(labels.max()) + 1
    s = indicator(labels, k)
    self.w, self.labels, self.k_c, self.lam = w, labels, int(k_c), float(lam)
    self.u = np.asarray((w @ s).todense())
    self.v = np.asarray((w.T @ s).todense())
    self.a = np.asarray(s.T @ (self.u * self.v))
    np.fill_diagonal(self.a, 0.0)
    self.size = np.bincount(labels, minlength=k).astype(np.float64)
    self.active = np.ones(k, bool)
    self.aff = self.a.T / self.size[:, None] ** 2 + self.a / self.size[None, :] ** 2
    np.fill_diagonal(self.aff, -np.inf)
    m = min(self.k_c, k - 1)
    self.top_index = np.zeros((k, max(m, 1)), np.int64)
    self.top_value = np.full((k, max(m, 1)), -np.inf)
    for i in range(k):
      self._refresh(i)

  @property
  def n_clusters(self) -> int:
    return int(self.active.sum())

  def _refresh(self, i: int) -> None:
    row = self.aff[i]
    m = self.top_index.shape[1]
    if row.size - 1 < m:
      order = np.argsort(-row, kind="stable")[:m]
    else:
      part = np.argpartition(-row, m - 1)[:m]
      order = part[np.lexsort((part, -row[part]))]
    self.top_index[i] = order
    self.top_value[i] = row[order]

  def merge_once(self) -> tuple:
    """Merges the best pair (module docstring); returns `(a, b)`, b merged into a."""
    scores = np.where(self.active, merge_scores(self._top_for_scores(), self.k_c, self.lam),
                      -np.inf)
    i = int(np.argmax(scores))
    j = int(self.top_index[i, 0])
    a, b = min(i, j), max(i, j)
    members = self.labels == b
    self.labels[members] = a
    self.u[:, a] += self.u[:, b]
    self.v[:, a] += self.v[:, b]
    self.size[a] += self.size[b]
    self.size[b] = 0.0
    self.active[b] = False
    self.a[a] += self.a[b]
    self.a[:, a] = np.bincount(self.labels, weights=self.u[:, a] * self.v[:, a],
                               minlength=self.a.shape[0])
    self.a[a, a] = 0.0
    self.a[b, :] = 0.0
    self.a[:, b] = 0.0
    live = self.active.copy()
    live[a] = False
    size = np.where(self.size > 0, self.size, 1.0)
    new = np.where(live, self.a[:, a] / size[a] ** 2 + self.a[a, :] / size ** 2, -np.inf)
    self.aff[a, :] = new
    self.aff[:, a] = new
    self.aff[b, :] = -np.inf
    self.aff[:, b] = -np.inf
    self.aff[a, a] = -np.inf
    # Rows whose top K_c may have changed: a itself, any holding a or b, any that a now enters.
    kth = self.top_value[:, -1]
    touched = (np.any(self.top_index == a, 1) | np.any(self.top_index == b, 1)
               | (new >= kth))
    touched[a] = True
    for r in np.flatnonzero(touched & self.active):
      self._refresh(int(r))
    return a, b

  def _top_for_scores(self) -> np.ndarray:
    n_other = self.n_clusters - 1
    if n_other < self.k_c:
      return self.top_value[:, :1]
    return self.top_value

  def compact_labels(self) -> np.ndarray:
    """Labels `[N]` renumbered 0..K-1 in order of cluster index."""
    return np.unique(self.labels, return_inverse=True)[1].astype(np.int64)


def merges_for_period(n_clusters: int, target: int, eta: float) -> int:
  """min(ceil(eta K), K - target), at least 0."""
  return max(0, min(int(math.ceil(eta * n_clusters)), n_clusters - target))


def agglomerate(w: sparse.spmatrix, labels: np.ndarray, n_merges: int, k_c: int = 5,
                lam: float = 1.0) -> np.ndarray:
  """`labels` after `n_merges` merges on the graph `w` (renumbered 0..K-1)."""
  state = Agglomeration(w, labels, k_c, lam)
  for _ in range(min(n_merges, state.n_clusters - 1)):
    state.merge_once()
  return state.compact_labels()
