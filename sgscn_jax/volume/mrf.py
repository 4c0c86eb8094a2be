"""A Potts Markov random field on voxel labels, the spatial prior of Atropos (Avants et al.
2011) written two ways: as iterated conditional modes on hard labels (`potts_icm`, the final
labelling of JULE) and as a differentiable loss on soft assignments (`potts_loss`, a loss
term of 3D SGSCN).

Model. Voxel i has a feature x_i in R^F and a label l_i in {0..k-1}; class c is a Gaussian
with mean mu_c and one variance s_c^2 per dimension; neighbours are the 2r face neighbours
(r the spatial rank), each weighted w_a = s_min / s_a by its axis' spacing (1: isotropic).
The energy of a labelling is

    E(l) = sum_i [ |x_i - mu_{l_i}|^2 / (2 s_{l_i}^2) + (F / 2) log s_{l_i}^2 ] / F
           - beta sum_i sum_{j in N(i)} w_{ij} [l_i = l_j]

(the negative log-likelihood per feature dimension, so that beta means the same for any F;
Atropos' "smoothing factor" plays beta's role, with its own neighbourhood and units).

ICM (`potts_icm`): from the given labels, `iterations` times: the class parameters from the
current labels (inside the mask), then every voxel of one parity of its coordinate sum
(a checkerboard: no two neighbours change at once) takes the class of lowest local energy,
then the other parity. Voxels outside the mask keep label -1 and are nobody's neighbour.

Loss (`potts_loss`): with p_i = softmax(S_i) over the channels, the expected number of
disagreeing neighbour pairs per voxel and axis,

    L_potts = sum_a w_a mean_i (1 - p_i . p_{i + e_a}),

0 when neighbouring voxels agree with certainty, at most sum_a w_a.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-6


def axis_weights(rank: int, spacing: Optional[Sequence[float]] = None) -> np.ndarray:
  """w_a = s_min / s_a per spatial axis (`[rank]` float64; ones without a spacing)."""
  if spacing is None:
    return np.ones(rank)
  s = np.asarray(spacing, np.float64)
  return s.min() / s


def neighbour_votes(labels: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
  """`[*S, k]`: for each voxel and class c, sum over face neighbours j of w_ij [l_j = c]
  (labels -1 vote for nothing; the volume's edge has no neighbour beyond it)."""
  one_hot = (labels[..., None] == np.arange(k)).astype(np.float32)
  votes = np.zeros(labels.shape + (k,), np.float32)
  for a, w in enumerate(weights):
    n = labels.shape[a]
    if n < 2:
      continue
    lo = [slice(None)] * labels.ndim
    hi = [slice(None)] * labels.ndim
    lo[a], hi[a] = slice(0, n - 1), slice(1, n)
    votes[tuple(hi)] += w * one_hot[tuple(lo)]
    votes[tuple(lo)] += w * one_hot[tuple(hi)]
  return votes


def class_energy(features: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """`[*S, k]`: the per-dimension Gaussian energy of every voxel under every class, the
  classes' means and variances estimated from the voxels labelled c (module docstring)."""
  f = features.shape[-1]
  flat = features.reshape(-1, f).astype(np.float64)
  lab = labels.ravel()
  energy = np.empty((flat.shape[0], k), np.float64)
  for c in range(k):
    members = flat[lab == c]
    if members.shape[0] == 0:
      energy[:, c] = np.inf
      continue
    mu = members.mean(0)
    var = max(float(np.mean((members - mu) ** 2)), EPS)
    d2 = np.sum((flat - mu) ** 2, 1)
    energy[:, c] = (d2 / (2 * var) + 0.5 * f * np.log(var)) / f
  return energy.reshape(labels.shape + (k,)).astype(np.float32)


def potts_icm(features: np.ndarray, labels: np.ndarray, k: int, beta: float,
              iterations: int = 5, mask: Optional[np.ndarray] = None,
              spacing: Optional[Sequence[float]] = None) -> np.ndarray:
  """ICM on the Potts model from `labels` `[*S]` (0..k-1; module docstring).

  Args:
    features: `[*S, F]` float, the voxels' features (the likelihood's data).
    labels: `[*S]` int, the starting labels (e.g. k-means'), -1 or anything outside `mask`.
    k: number of classes.
    beta: the prior's weight (0: the labels of the nearest class mean and variance).
    iterations: sweeps (each: class parameters, then the two checkerboard halves).
    mask: `[*S]` bool, the voxels labelled (None: all).
    spacing: voxel size per axis (neighbour weights), or None.

  Returns:
    `[*S]` int32: 0..k-1 inside the mask, -1 outside.
  """
  labels = np.asarray(labels, np.int64).copy()
  mask = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
  labels[~mask] = -1
  weights = axis_weights(labels.ndim, spacing)
  parity = np.indices(labels.shape).sum(0) % 2
  for _ in range(iterations):
    energy = class_energy(features, labels, k)
    for half in (0, 1):
      votes = neighbour_votes(labels, k, weights)
      best = np.argmin(energy - beta * votes, -1)
      update = mask & (parity == half)
      labels[update] = best[update]
  return labels.astype(np.int32)


def potts_loss(response: jax.Array, spacing: Optional[Sequence[float]] = None) -> jax.Array:
  """L_potts of the module docstring for a response `[*S, K]` (logits), a scalar."""
  p = jax.nn.softmax(response.astype(jnp.float32), -1)
  weights = axis_weights(response.ndim - 1, spacing)
  total = jnp.float32(0.0)
  for a, w in enumerate(weights):
    n = p.shape[a]
    if n < 2:
      continue
    lo = jax.lax.slice_in_dim(p, 0, n - 1, axis=a)
    hi = jax.lax.slice_in_dim(p, 1, n, axis=a)
    total = total + float(w) * jnp.mean(1.0 - jnp.sum(lo * hi, -1))
  return total
