"""JULE's last step: every voxel's feature, clustered into k labels (Moriya et al.: k-means
on the learnt patch features), here with two additions that keep tissues apart:

    dense embeddings f [*S, E] (unit length, `method.dense_features`)
    + the voxel's own standardised values z [*S, C], weighted:  x = [f, w z]  [*S, E + C]
      --k-means (k, inside the mask)--> labels
      --Potts ICM (beta, `volume.mrf.potts_icm`), when beta > 0--> labels

Why the intensity. The triplet loss makes patches of one cluster close, so a patch
straddling two tissues is embedded between them, and at 2 mm grey and white matter are
mostly such patches: on MNI152 the final k-means put GM and WM in one cluster on every seed
(docs/VOLUMES.md). A voxel's own value is what the tissues differ by; its weight w
(`JuleConfig.intensity_weight`) is in units of the embedding's (unit vectors: distances up
to 2; z has unit variance inside the mask). w = 0 is Moriya et al.'s features alone.

Why the Potts prior. Atropos' MRF is what lifts it above k-means on the template (GM 93.1 /
WM 94.4 against 90.4 / 92.9): a voxel takes the class its neighbours take unless its own
features say clearly otherwise. The same prior, on JULE's features, is `mrf` (beta).

Labels: 0..k-1 without a mask; with a mask 0 outside and 1..k inside.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np

from sgscn_jax.baselines import kmeans
from sgscn_jax.volume import mrf


def voxel_features(dense: np.ndarray, standardised: np.ndarray,
                   intensity_weight: float) -> np.ndarray:
  """`[*S, E + C]` = [f, w z] (module docstring); `[*S, E]` when w = 0."""
  if intensity_weight == 0:
    return np.asarray(dense, np.float32)
  return np.concatenate([np.asarray(dense, np.float32),
                         intensity_weight * np.asarray(standardised, np.float32)], -1)


_kmeans = jax.jit(lambda key, x, k, r, t: kmeans.kmeans(key, x, k, r, t).assignments,
                  static_argnums=(2, 3, 4))


def cluster_voxels(key, features: np.ndarray, k: int, restarts: int, iterations: int,
                   mask: Optional[np.ndarray] = None, beta: float = 0.0,
                   mrf_iterations: int = 5,
                   spacing: Optional[Sequence[float]] = None) -> np.ndarray:
  """k-means (and, beta > 0, Potts ICM) of `features` `[*S, F]` inside `mask`: labels
  `[*S]` int32, 0..K-1 without a mask, 0 outside and 1..K inside with one (renumbered by
  first class index; K <= k non-empty classes)."""
  spatial = features.shape[:-1]
  inside = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool)
  points = features[inside]
  k = max(1, min(k, points.shape[0]))
  assign = np.asarray(_kmeans(key, jax.numpy.asarray(points), k, restarts, iterations))
  labels = np.full(spatial, -1, np.int64)
  labels[inside] = assign
  if beta > 0:
    labels = mrf.potts_icm(features, labels, k, beta, mrf_iterations, inside, spacing)
  values, inverse = np.unique(labels[inside], return_inverse=True)
  out = np.zeros(spatial, np.int32)
  out[inside] = inverse.ravel() + (0 if mask is None else 1)
  return out
