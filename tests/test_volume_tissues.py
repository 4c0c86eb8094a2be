"""Volumes whose tissues must stay apart (issue 45): the synthetic ellipsoid that 3D SGSCN
must find, k-means inside a foreground mask, SGSCN's volume loss terms against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax import Config, volume
from sgscn_jax.baselines import kmeans
from sgscn_jax.core import losses
from sgscn_jax.volume import loss_terms, masked

SPACING = (2.5, 0.8, 0.8)


def ellipsoid(seed=0):
  """The issue's volume: 16x40x40 voxels of 2.5x0.8x0.8 mm, an ellipsoid (semi-axes 14,
  9.8, 9.8 mm: 3496 voxels) at 0.8 in a background at 0.2, Gaussian noise 0.03:
  `(volume [16, 40, 40, 1], truth [16, 40, 40] bool)`."""
  rng = np.random.default_rng(seed)
  shape = (16, 40, 40)
  grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, SPACING)],
                      indexing="ij")
  r = np.sqrt((grids[0] / 14.0) ** 2 + (grids[1] / 9.8) ** 2 + (grids[2] / 9.8) ** 2)
  truth = r < 1.0
  v = np.where(truth, 0.8, 0.2) + rng.normal(0, 0.03, shape)
  return v[..., None].astype(np.float32), truth


def best_dice(labels, truth):
  labels = np.asarray(labels)
  return max(2 * np.sum((labels == c) & truth) / (np.sum(labels == c) + truth.sum())
             for c in np.unique(labels))


def test_3d_sgscn_finds_the_ellipsoid():
  v, truth = ellipsoid(0)
  assert truth.sum() == 3496
  seg = volume.segment_volume(jax.random.key(0), v, Config(n_channels=16), mode="3d",
                              spacing=SPACING)
  assert best_dice(seg.labels, truth) > 0.95


def test_kmeans_in_mask_clusters_only_the_mask():
  v, truth = ellipsoid(1)
  mask = np.zeros(truth.shape, bool)
  mask[4:12, 10:30, 10:30] = True                 # a box across the ellipsoid's border
  seg = masked.kmeans_in_mask(jax.random.key(0), v, kmeans.KMeansConfig(k=2), mask)
  labels = np.asarray(seg.labels)
  assert np.all(labels[~mask] == 0) and set(np.unique(labels[mask])) == {1, 2}
  bright = labels == labels[8, 20, 20]
  np.testing.assert_array_equal(bright, mask & truth)
  assert int(seg.n_labels) == 3


def test_intensity_variance_loss_matches_numpy_and_terms_are_registered():
  rng = np.random.default_rng(0)
  s = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
  x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
  t = s / loss_terms.TEMPERATURE
  p = np.exp(t - t.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  p, xf = p.reshape(-1, 6), x.reshape(-1, 2)
  total = 0.0
  for c in range(6):
    m = (p[:, c:c + 1] * xf).sum(0) / p[:, c].sum()
    total += np.sum(p[:, c] * np.sum((xf - m) ** 2, 1))
  got = loss_terms.intensity_variance_loss(jnp.asarray(s), jnp.asarray(x), None)
  np.testing.assert_allclose(float(got), total / xf.size, rtol=1e-4)
  assert {"intensity_variance", "potts"} <= set(losses.LOSS_TERMS)


def test_segment_volume_with_the_volume_terms_and_a_mask():
  v, truth = ellipsoid(2)
  v, truth = v[:8, 8:32, 8:32], truth[:8, 8:32, 8:32]
  mask = np.zeros(truth.shape, bool)
  mask[1:7, 3:21, 3:21] = True
  config = Config(n_channels=8, iterations=3).with_weights(intensity_variance=1.0, potts=1.0)
  seg = volume.segment_volume(jax.random.key(0), v, config, mode="3d", spacing=SPACING,
                              mask=mask)
  labels = np.asarray(seg.labels)
  assert bool(seg.finite) and np.all(labels[~mask] == 0) and labels[mask].min() == 1
  assert int(seg.n_labels) == labels.max() + 1
