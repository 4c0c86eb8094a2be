"""Baselines: k-means, DeepCluster and IIC (sgscn_jax.baselines).

XLA:CPU compilation dominates this file's run time, so each program compiles once (one
image shape per method), and DeepCluster and IIC are run through entry points compiled
at backend optimisation level 0 (`core.batching.EntryPoints(..., compiler_options=...)`): the
same functions, half the compile time, slower code.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import image_keys, registry
from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.data import synthetic
from sgscn_jax.baselines import (DeepClusterConfig, IICConfig,
                                 KMeansConfig, augment, deepcluster, iic,
                                 iic_mutual_information, kmeans)

SHAPE = (48, 48)
SEEDS = (0, 1)
KMEANS = KMeansConfig(k=2, restarts=3, iterations=10)
DEEPCLUSTER = DeepClusterConfig(k=2, rounds=3, steps_per_round=5)
IIC = IICConfig(k=2, steps=30, feature_channels=16)
_QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def _boundary_band(mask: np.ndarray) -> np.ndarray:
  """Pixels with a 4-neighbour on the other side of the mask's boundary `[H, W]` bool."""
  band = np.zeros_like(mask)
  for axis in (0, 1):
    edge = np.diff(mask.astype(np.int8), axis=axis) != 0
    lo = [slice(None)] * 2
    hi = [slice(None)] * 2
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    band[tuple(lo)] |= edge
    band[tuple(hi)] |= edge
  return band


def _dice(labels, mask, valid=None) -> float:
  pred = selection.select(np.asarray(labels), "largest_overlap", mask)
  return metrics.dice(pred, mask, valid)


def _single_batch_and_repeat(entry, config):
  """Single runs, a vmapped batch and a repeated single run on the two-region images.

  `entry`: a module with `segment_one` / `segment_batch`, or a `core.batching.EntryPoints`.
  """
  data = [synthetic.two_region_image(SHAPE, seed=s) for s in SEEDS]
  images = np.stack([d[0] for d in data])
  keys = image_keys(11, len(SEEDS))
  singles = [entry.segment_one(keys[i], images[i], config) for i in range(len(SEEDS))]
  batch = entry.segment_batch(keys, images, config, batching="vmap")
  repeat = entry.segment_one(keys[0], images[0], config)
  return data, singles, batch, repeat


def _check_batch_and_determinism(singles, batch, repeat, n_steps):
  for i, one in enumerate(singles):
    assert batch.labels[i].shape == SHAPE and batch.labels.dtype == jnp.int32
    assert np.mean(np.asarray(batch.labels[i]) == np.asarray(one.labels)) > 0.99
    np.testing.assert_allclose(batch.history.total[i], one.history.total, rtol=1e-2, atol=1e-4)
    assert int(batch.iterations[i]) == int(one.iterations)
    assert bool(one.finite) and bool(batch.finite[i])
    k = int(one.n_labels)
    assert sorted(np.unique(np.asarray(one.labels))) == list(range(k))
    assert one.history.total.shape == (n_steps,) and one.history.n_labels.shape == (n_steps,)
  np.testing.assert_array_equal(repeat.labels, singles[0].labels)
  np.testing.assert_array_equal(repeat.history.total, singles[0].history.total)


# ----------------------------------------------------------------------------- k-means


def test_kmeans_recovers_two_regions_batch_and_determinism():
  data, singles, batch, repeat = _single_batch_and_repeat(kmeans, KMEANS)
  _check_batch_and_determinism(singles, batch, repeat, KMEANS.iterations)
  # an equal config (a new but equal dataclass) reuses the compiled program
  compiled = kmeans.ENTRY.one._cache_size()
  kmeans.segment_one(jax.random.key(1), data[0][0], dataclasses.replace(KMEANS))
  assert kmeans.ENTRY.one._cache_size() == compiled
  for (_, mask), one in zip(data, singles):
    assert _dice(one.labels, mask) > 0.95
    assert int(one.n_labels) == 2
    # the inertia never increases along Lloyd's iterations
    assert np.all(np.diff(np.asarray(one.history.total)) <= 1e-6)


def _blobs(seed=0, n=60):
  rng = np.random.default_rng(seed)
  centres = np.array([[0.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.3, 1.0, 0.8]])
  x = np.concatenate([c + rng.normal(scale=0.25, size=(n, 3)) for c in centres])
  return x.astype(np.float32)


def _numpy_lloyd(x, centres, iterations):
  x, centres = x.astype(np.float64), centres.astype(np.float64).copy()
  for _ in range(iterations):
    assign = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    for j in range(len(centres)):
      if np.any(assign == j):
        centres[j] = x[assign == j].mean(0)
  d2 = ((x[:, None] - centres[None]) ** 2).sum(-1)
  return centres, np.argmin(d2, axis=1), d2.min(1).sum()


_lloyd = jax.jit(kmeans.lloyd, static_argnums=2)
_seed = jax.jit(kmeans.kmeans_plus_plus, static_argnums=2)


def test_kmeans_lloyd_matches_numpy_from_the_same_start():
  x = _blobs()
  start = _seed(jax.random.key(5), jnp.asarray(x), 3)
  # k-means++ picks k distinct data points
  rows = {tuple(r) for r in np.asarray(x)}
  chosen = [tuple(c) for c in np.asarray(start)]
  assert all(c in rows for c in chosen) and len(set(chosen)) == 3
  result = _lloyd(jnp.asarray(x), start, 20)
  centres, assign, inertia = _numpy_lloyd(x, np.asarray(start), 20)
  np.testing.assert_array_equal(result.assignments, assign)
  np.testing.assert_allclose(result.centres, centres, atol=1e-5)
  np.testing.assert_allclose(result.inertia, inertia, rtol=1e-5)
  assert 1 <= int(result.iterations) < 20


def test_kmeans_matches_sklearn_from_the_same_start():
  sklearn_cluster = pytest.importorskip("sklearn.cluster")
  x = _blobs(seed=1)
  start = _seed(jax.random.key(2), jnp.asarray(x), 3)
  result = _lloyd(jnp.asarray(x), start, 20)
  reference = sklearn_cluster.KMeans(3, init=np.asarray(start, np.float64), n_init=1, max_iter=20,
                                     tol=0.0, algorithm="lloyd").fit(x.astype(np.float64))
  np.testing.assert_array_equal(result.assignments, reference.labels_)
  np.testing.assert_allclose(result.centres, reference.cluster_centers_, atol=1e-5)
  np.testing.assert_allclose(result.inertia, reference.inertia_, rtol=1e-5)


def test_kmeans_keeps_the_restart_with_the_lowest_inertia():
  x = jnp.asarray(_blobs(seed=2))
  key = jax.random.key(9)
  best = jax.jit(kmeans.kmeans, static_argnums=(2, 3, 4))(key, x, 3, 4, 20)
  each = [_lloyd(x, _seed(k, x, 3), 20).inertia
          for k in jax.random.split(key, 4)]
  np.testing.assert_allclose(best.inertia, min(float(v) for v in each), rtol=1e-6)


# ----------------------------------------------------------------------------- DeepCluster


def test_deepcluster_recovers_two_regions_batch_and_determinism():
  entry = EntryPoints(deepcluster.segment_image, DeepClusterConfig, compiler_options=_QUICK_COMPILE)
  data, singles, batch, repeat = _single_batch_and_repeat(entry, DEEPCLUSTER)
  steps = DEEPCLUSTER.rounds * DEEPCLUSTER.steps_per_round
  _check_batch_and_determinism(singles, batch, repeat, steps)
  for (_, mask), one in zip(data, singles):
    assert _dice(one.labels, mask) > 0.95
    assert int(one.iterations) == steps
    assert np.all(np.asarray(one.history.n_labels) == 2)


def test_pca_whiten_gives_shrunk_unit_variance():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
  z = np.asarray(deepcluster.pca_whiten(jnp.asarray(f, jnp.float32), 3, 1e-3))
  cov = np.cov(f.T, bias=True)
  lam = np.sort(np.linalg.eigvalsh(cov))[::-1][:3]
  np.testing.assert_allclose(np.cov(z.T, bias=True), np.diag(lam / (lam + 1e-3 * np.trace(cov))),
                             atol=2e-4)


def test_balanced_cluster_weights():
  w = np.asarray(deepcluster.cluster_weights(jnp.array([0, 0, 0, 2]), 3, True))
  np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
  np.testing.assert_allclose(deepcluster.cluster_weights(jnp.array([0, 1]), 3, False), [0.5, 0.5])


# ----------------------------------------------------------------------------- IIC


def _numpy_mi(joint):
  p = 0.5 * (joint + joint.T)
  pi, pj = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
  nz = p > 0
  return float(np.sum(p[nz] * np.log(p[nz] / (pi * pj)[nz])))


def test_iic_mutual_information_against_numpy():
  rng = np.random.default_rng(0)
  logits1, logits2 = rng.normal(size=(2, 40, 4)) * 2
  p1 = np.exp(logits1) / np.exp(logits1).sum(1, keepdims=True)
  p2 = np.exp(logits2) / np.exp(logits2).sum(1, keepdims=True)
  np.testing.assert_allclose(iic_mutual_information(jnp.asarray(p1), jnp.asarray(p2)),
                             _numpy_mi(p1.T @ p2 / 40), rtol=1e-5)
  # a hand-built joint: P = [[0.3, 0.1], [0.1, 0.5]] from 10 one-hot pairs
  pairs = [(0, 0)] * 3 + [(0, 1), (1, 0)] + [(1, 1)] * 5
  a, b = (np.eye(2)[[p[i] for p in pairs]] for i in (0, 1))
  expected = (0.3 * np.log(0.3 / 0.16) + 2 * 0.1 * np.log(0.1 / 0.24) + 0.5 * np.log(0.5 / 0.36))
  np.testing.assert_allclose(iic_mutual_information(jnp.asarray(a), jnp.asarray(b)), expected,
                             rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_iic_mutual_information_extremes(k):
  one_hot = np.eye(k)[np.repeat(np.arange(k), 4)]                      # balanced, identical
  np.testing.assert_allclose(iic_mutual_information(jnp.asarray(one_hot), jnp.asarray(one_hot)),
                             np.log(k), rtol=1e-5)
  a = np.eye(k)[np.repeat(np.arange(k), k)]                           # every (i, j) pair once
  b = np.eye(k)[np.tile(np.arange(k), k)]
  np.testing.assert_allclose(iic_mutual_information(jnp.asarray(a), jnp.asarray(b)), 0.0, atol=1e-6)
  # uniform soft assignments against balanced hard ones: J = (1/k)(1/k), a product
  # (IIC symmetrises J, so both marginals must be equal for this to be 0)
  uniform = np.full(one_hot.shape, 1.0 / k)
  np.testing.assert_allclose(iic_mutual_information(jnp.asarray(uniform), jnp.asarray(one_hot)),
                             0.0, atol=1e-6)


def test_displaced_joint_against_numpy():
  rng = np.random.default_rng(1)
  h, w, k = 5, 6, 3
  p1 = rng.dirichlet(np.ones(k), size=(h, w))
  p2 = rng.dirichlet(np.ones(k + 1), size=(h, w))
  valid = rng.uniform(size=(h, w)) > 0.3
  joint, count = np.zeros((k, k + 1)), 0
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      for y in range(h):
        for x in range(w):
          yy, xx = y + dy, x + dx
          if 0 <= yy < h and 0 <= xx < w and valid[yy, xx]:
            joint += np.outer(p1[y, x], p2[yy, xx])
            count += 1
  got = iic.displaced_joint(jnp.asarray(p1, jnp.float32), jnp.asarray(p2, jnp.float32),
                            jnp.asarray(valid), 1)
  np.testing.assert_allclose(got, joint / count, rtol=1e-5)
  np.testing.assert_allclose(np.sum(got), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shift, flip", [((2, -1), True), ((-1, 3), False), ((0, 0), True)])
def test_augment_undo_inverts_the_geometry(shift, flip):
  x = jnp.asarray(np.random.default_rng(2).uniform(size=(7, 9, 2)), jnp.float32)
  limits = augment.shift_limits((7, 9), 0.34)                         # (2, 3)
  t = augment.identity(2)._replace(shift=jnp.array(shift, jnp.int32), flip=jnp.array(flip))
  moved = augment.apply_geometric(x, t, limits)
  rows, cols = np.clip(np.arange(7) + shift[0], 0, 6), np.clip(np.arange(9) + shift[1], 0, 8)
  expected = np.asarray(x)[rows][:, cols]
  np.testing.assert_array_equal(moved, expected[:, ::-1] if flip else expected)
  back, valid = augment.undo(moved, t, limits)
  assert int(valid.sum()) == (7 - abs(shift[0])) * (9 - abs(shift[1]))
  back, valid = np.asarray(back), np.asarray(valid)
  np.testing.assert_array_equal(back[valid], np.asarray(x)[valid])
  assert np.all(back[~valid] == 0)


def test_iic_recovers_two_regions_batch_and_determinism():
  entry = EntryPoints(iic.segment_image, IICConfig, compiler_options=_QUICK_COMPILE)
  data, singles, batch, repeat = _single_batch_and_repeat(entry, IIC)
  _check_batch_and_determinism(singles, batch, repeat, IIC.steps)
  for (_, mask), one in zip(data, singles):
    # IIC gives the pixels next to the boundary to the smaller region (a balance bias of
    # the mutual information, see iic's docstring): away from that 1-pixel band it is exact.
    assert _dice(one.labels, mask, ~_boundary_band(mask)) > 0.95
    assert _dice(one.labels, mask) > 0.9
    mi = np.asarray(one.history.terms["mutual_information"])
    assert mi[-1] > mi[0] + 0.3 and mi[-1] <= np.log(2) + 1e-5


# ----------------------------------------------------------------------------- registry


def test_methods_registry_and_config_checks():
  assert set(registry.METHODS) >= {"sgscn", "kmeans", "deepcluster", "iic"}
  image = np.zeros((8, 8, 3), np.float32)
  with pytest.raises(TypeError, match="KMeansConfig"):
    kmeans.segment_one(jax.random.key(0), image, IIC)
  with pytest.raises(ValueError, match="keys"):
    registry.get_method("kmeans").segment_batch(image_keys(0, 3), np.stack([image, image]), KMEANS)
  with pytest.raises(ValueError):
    dataclasses.replace(registry.get_method("deepcluster").default_config, pca_dim=64)
  assert registry.get_method("deepcluster").default_config.whitened_dim == 2
