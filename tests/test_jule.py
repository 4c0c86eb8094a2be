"""JULE (`sgscn_jax.jule`): the triplet loss and the graph-degree linkage against NumPy written
out term by term, the patch geometry, a two-tissue volume segmented, determinism, the plan."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import registry
from sgscn_jax.jule import agglomerate, method, network, patches, triplet
from sgscn_jax.volume import memory


def test_weighted_triplet_loss_matches_a_loop_over_triplets():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((7, 3)).astype(np.float32)
  f /= np.linalg.norm(f, axis=1, keepdims=True)
  labels = np.array([0, 0, 1, 1, 1, 2, 0])
  valid = np.array([1, 1, 1, 1, 1, 1, 0], bool)
  margin, gamma = 0.3, 1.5
  total, count = 0.0, 0
  for i, j, k in itertools.product(range(7), repeat=3):
    if (i < j and labels[i] == labels[j] and labels[k] != labels[i]
        and valid[i] and valid[j] and valid[k]):
      dp = np.sum((f[i] - f[j]) ** 2)
      dn = np.sum((f[i] - f[k]) ** 2)
      total += max(0.0, gamma * dp - dn + margin)
      count += 1
  loss, n = triplet.weighted_triplet_loss(jnp.asarray(f), jnp.asarray(labels),
                                          jnp.asarray(valid), margin, gamma)
  assert int(n) == count == 1 * 4 + 3 * 3   # (0,1) x {2,3,4,5}; (2,3),(2,4),(3,4) x {0,1,5}
  np.testing.assert_allclose(float(loss), total / count, rtol=1e-5)
  empty, none = triplet.weighted_triplet_loss(jnp.asarray(f), jnp.zeros(7, jnp.int32),
                                              jnp.asarray(valid))
  assert float(empty) == 0.0 and int(none) == 0


def _points():
  """Two tight groups of 4 and one of 3 on a line, hand-built."""
  return np.array([[0.0], [0.1], [0.25], [0.3], [2.0], [2.05], [2.2], [2.4],
                   [5.0], [5.1], [5.3]])


def test_affinity_and_graph_degree_linkage_match_numpy():
  x = _points()
  n, k_s = len(x), 3
  w, nn1 = agglomerate.sample_affinity(x, k_s)
  d2 = (x - x.T) ** 2
  np.fill_diagonal(d2, np.inf)
  knn = np.argsort(d2, axis=1, kind="stable")[:, :k_s]
  sigma2 = np.mean(np.take_along_axis(d2, knn, 1))
  expect = np.zeros((n, n))
  for i in range(n):
    for j in knn[i]:
      expect[i, j] = np.exp(-d2[i, j] / sigma2)
  np.testing.assert_allclose(w.toarray(), expect, rtol=1e-12)
  np.testing.assert_array_equal(nn1, knn[:, 0])
  labels = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4])
  aff = agglomerate.cluster_affinity(w, labels, 5)
  for a, b in itertools.permutations(range(5), 2):
    ca, cb = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
    w_ab, w_ba = expect[np.ix_(ca, cb)], expect[np.ix_(cb, ca)]
    one_a, one_b = np.ones(len(ca)), np.ones(len(cb))
    value = (one_a @ w_ab @ w_ba @ one_a / len(ca) ** 2
             + one_b @ w_ba @ w_ab @ one_b / len(cb) ** 2)   # JULE eq. 4
    np.testing.assert_allclose(aff[a, b], value, rtol=1e-10, atol=1e-15)


def test_incremental_merges_equal_recomputed_affinities_and_find_the_groups():
  x = _points()
  w, nn1 = agglomerate.sample_affinity(x, 4)
  state = agglomerate.Agglomeration(w, np.arange(len(x)), k_c=3)
  while state.n_clusters > 3:
    state.merge_once()
    labels = state.labels
    live = np.flatnonzero(state.active)
    full = agglomerate.cluster_affinity(w, np.searchsorted(live, labels), live.size)
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_allclose(state.aff[np.ix_(live, live)], full, rtol=1e-9)
  groups = state.compact_labels()
  np.testing.assert_array_equal(groups, [0] * 4 + [1] * 4 + [2] * 3)
  assert agglomerate.merges_for_period(100, 4, 0.9) == 90
  assert agglomerate.merges_for_period(10, 4, 0.9) == 6
  scores = agglomerate.merge_scores(np.array([[3.0, 2.0, 1.0], [5.0, 5.0, 5.0]]), 3, 1.0)
  np.testing.assert_allclose(scores, [3.0 + (1.0 + 2.0) / 2, 5.0])


def test_patch_geometry_follows_the_spacing_and_the_dense_pass_equals_the_patches():
  taps = patches.layer_taps(5, (3.0, 1.0, 1.0), 3)
  assert taps == ((3, 3, 3), (1, 3, 3)) and patches.extent(taps) == (3, 5, 5)
  assert patches.extent(patches.layer_taps(5, (4.0, 1.0, 1.0), 3)) == (1, 5, 5)
  assert patches.extent(patches.layer_taps(7, (2.0, 1.0, 1.0), 3)) == (5, 7, 7)
  rng = np.random.default_rng(0)
  image = rng.standard_normal((6, 7, 8, 1)).astype(np.float32)
  taps = patches.layer_taps(3, None, 3)
  halo, ext = patches.halo(taps), patches.extent(taps)
  padded = patches.pad(image, halo)
  centres = patches.sample_centres(rng, image.shape[:3], 40)
  assert len({tuple(c) for c in centres}) == 40
  params = network.init(jax.random.key(0), taps, 1, 4, 5)
  dense = np.asarray(network.embed_dense(params, jnp.asarray(padded)))
  per_patch = np.asarray(network.embed_patches(
      params, jnp.asarray(patches.extract(padded, centres, ext))))
  np.testing.assert_allclose(dense[tuple(centres.T)], per_patch, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(per_patch, axis=1), 1.0, rtol=1e-5)


def two_tissue_volume(seed=0, shift=0):
  rng = np.random.default_rng(seed)
  z, y, x = np.mgrid[:16, :16, :16]
  truth = ((z - 8 - shift) ** 2 / 36 + (y - 8) ** 2 / 25 + (x - 8) ** 2 / 25) < 1
  volume = np.where(truth, 0.8, 0.3) + 0.05 * rng.standard_normal(truth.shape)
  return volume[..., None].astype(np.float32), truth


TEST_CONFIG = method.JuleConfig(k=2, n_patches=400, patch_size=3, channels=8, embed_dim=8,
                                epochs_per_period=2, final_epochs=2, batch_size=32,
                                kmeans_restarts=2, kmeans_iterations=10, progress=False)


def test_two_tissue_volume_is_segmented_and_the_same_key_gives_the_same_labels():
  volume, truth = two_tissue_volume()
  jule = registry.get_method("jule")
  first = jule.segment_one(jax.random.key(0), volume, TEST_CONFIG)
  again = jule.segment_one(jax.random.key(0), volume, TEST_CONFIG)
  np.testing.assert_array_equal(first.labels, again.labels)
  dice = max(2 * np.sum((first.labels == c) & truth) / (np.sum(first.labels == c) + truth.sum())
             for c in range(int(first.n_labels)))
  assert int(first.n_labels) == 2 and bool(first.finite) and dice > 0.93, dice
  assert first.history.n_labels[-1] == 2 and int(first.iterations) > 0


def test_memory_plan_downsamples_or_refuses_naming_what_fits():
  config = method.JuleConfig()
  plan = method.plan_memory((80, 94, 77), 1, config, spacing=(2.0, 2.0, 2.0), factor=1,
                            memory_limit="8G")
  assert plan.work_shape == (80, 94, 77) and plan.estimated_bytes < 8 * 2 ** 30
  budget = method.estimate_bytes((40, 47, 38), 1, config) + 1
  auto = method.plan_memory((80, 94, 77), 1, config, memory_limit=budget)
  assert auto.factor == 2
  with pytest.raises(memory.MemoryBudgetError, match="--factor 2"):
    method.plan_memory((80, 94, 77), 1, config, factor=1, memory_limit=budget)
