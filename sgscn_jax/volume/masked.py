"""Clustering inside a volume's foreground (`data.foreground`, or a data set's own mask such
as nilearn's MNI152 brain mask): the voxels outside take a label of their own (0) and do not
enter the clustering, so that k classes are k tissues and not the air around them.

    seg = kmeans_in_mask(key, volume, KMeansConfig(k=3), mask)   # labels 0 outside, 1..3 in

`atropos` (`baselines.atropos`) and `jule` (`jule.method.segment(..., mask=)`) take the
mask themselves; 3D SGSCN takes it through `volume.segment_volume(..., mask=)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax.baselines import kmeans
from sgscn_jax.core.loop import Segmentation, as_key
from sgscn_jax.data.foreground import masked_standardise

_kmeans = jax.jit(kmeans.kmeans, static_argnums=(2, 3, 4))


def labels_with_outside(inside_labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """`[*S]` int32: 0 outside `mask`, the inside labels renumbered 1..K in order of value."""
  mask = np.asarray(mask, bool)
  _, inverse = np.unique(np.asarray(inside_labels)[mask], return_inverse=True)
  out = np.zeros(mask.shape, np.int32)
  out[mask] = inverse.ravel() + 1
  return out


def kmeans_in_mask(key, volume, config: kmeans.KMeansConfig, mask) -> Segmentation:
  """k-means (`baselines.kmeans`, the same k-means++ starts and Lloyd iterations) on the
  voxels of `volume` `[*S, C]` inside `mask` `[*S]`, standardised with their own mean and
  variance: labels 0 outside, 1..K inside (K <= k non-empty clusters)."""
  mask = np.asarray(mask, bool)
  x = masked_standardise(volume, mask)[mask]
  result = _kmeans(as_key(key), jnp.asarray(x), config.k, config.restarts, config.iterations)
  result = jax.device_get(result)
  inside = np.zeros(mask.shape, np.int64)
  inside[mask] = np.asarray(result.assignments)
  labels = labels_with_outside(inside, mask)
  return Segmentation(labels, np.int32(labels.max() + 1), np.int32(result.iterations),
                      np.bool_(np.all(np.isfinite(result.centres))), None)
