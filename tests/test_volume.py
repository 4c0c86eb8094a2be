"""3D SGSCN and slice mode: spacing reaches L_cc, structures are recovered, labels stay
consistent."""

import jax
import numpy as np
import pytest

from sgscn_jax import Config, segment_one
from sgscn_jax.core import losses
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.core import network
from sgscn_jax import volume

SPACING = (3.0, 1.0, 1.0)  # thick slices: (dz, dy, dx)


def two_ellipsoids(shape=(16, 32, 32), spacing=SPACING, noise=0.05, seed=0):
  """A volume `[D, H, W, 1]` with a dark (0.1) and a bright (0.9) ellipsoid on 0.5, drawn
  in physical coordinates (so they are round in mm, flat in voxels), and their masks."""
  centres = [(n * s) for n, s in zip(shape, spacing)]
  zz, yy, xx = np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)],
                           indexing="ij")
  d, h, w = centres

  def ellipsoid(cz, cy, rz, ry):
    return ((zz - d * cz) / (d * rz)) ** 2 + ((yy - h * cy) / (h * ry)) ** 2 + (
        (xx - w * 0.5) / (w * 0.3)) ** 2 < 1

  dark, bright = ellipsoid(0.3, 0.3, 0.22, 0.2), ellipsoid(0.68, 0.68, 0.22, 0.22)
  v = np.full(shape, 0.5, np.float32)
  v[dark], v[bright] = 0.1, 0.9
  v += np.random.default_rng(seed).normal(scale=noise, size=shape).astype(np.float32)
  return np.clip(v, 0, 1)[..., None], dark, bright


# ------------------------------------------------------------------------ consistency


def test_consistent_labels_follow_structures_through_permuted_ids():
  base = np.zeros((6, 8), np.int64)
  base[2:5, 2:6] = 1  # a structure
  base[:, 7] = 2      # another one
  perms = [(0, 1, 2), (2, 0, 1), (1, 2, 0), (0, 2, 1)]
  stack = np.stack([np.asarray(p)[base] for p in perms])  # same partition, new ids each slice
  out = volume.consistent_slice_labels(stack)
  for i in range(1, 4):
    np.testing.assert_array_equal(out[i], out[0])
  np.testing.assert_array_equal(np.unique(out), [0, 1, 2])


def test_matching_is_one_to_one_largest_overlap_first():
  previous = np.array([[0, 0, 0, 1, 1, 1]])
  current = np.array([[5, 5, 7, 7, 7, 7]])  # 7 overlaps 1 by 3 and 0 by 1; 5 overlaps 0 by 2
  assert volume.match_by_overlap(current, previous) == {7: 1, 5: 0}
  current = np.array([[5, 5, 5, 5, 7, 7]])  # 5: 0 by 3, 1 by 1; 7: 1 by 2
  assert volume.match_by_overlap(current, previous) == {5: 0, 7: 1}
  current = np.array([[3, 3, 3, 3, 3, 4]])  # a split: the larger part keeps the id
  assert volume.match_by_overlap(current, previous) == {3: 0, 4: 1}
  # A new structure that overlaps nothing free gets a new id.
  stack = np.array([[[0, 0, 1, 1]], [[0, 0, 1, 2]]])
  out = volume.consistent_slice_labels(stack)
  np.testing.assert_array_equal(out[:, 0], [[0, 0, 1, 1], [0, 0, 1, 2]])


def test_distinct_labels_share_no_id_between_slices():
  stack = np.array([[[0, 1]], [[0, 1]], [[1, 1]]])
  out = volume.distinct_slice_labels(stack)
  assert len(set(out[0].ravel()) & set(out[1].ravel())) == 0
  assert len(np.unique(out)) == 5


# ----------------------------------------------------------------------------- spacing


def test_spacing_reaches_the_context_loss_of_the_loop():
  vol, _, _ = two_ellipsoids((6, 10, 12), seed=1)
  config = Config(n_channels=8, iterations=1, early_stop=False)
  key = jax.random.key(0)
  first = {}
  for spacing in ((1.0, 1.0, 1.0), SPACING):  # one compiled program: spacing is traced
    r = segment_one(key, vol, config, spacing=spacing)
    first[spacing] = float(r.history.terms["context_consistency"][0])
  params = network.init(key, vol.shape, config)
  response = np.asarray(network.apply(params, vol, config), np.float64)
  for spacing, value in first.items():
    x = np.asarray(losses.coordinate_grid(vol.shape[:-1], spacing), np.float64)
    q = np.exp(response - response.max(-1, keepdims=True))
    q = (q / q.sum(-1, keepdims=True)).reshape(-1, 8)
    xs = x.reshape(-1, 3)
    expected = 0.0
    for c in range(8):
      w = q[:, c] / q[:, c].sum()
      centre = (w[:, None] * xs).sum(0)
      expected += (w * ((xs - centre) ** 2).sum(-1)).sum()
    np.testing.assert_allclose(value, expected / (3 * 8), rtol=1e-4)
  assert abs(first[(1.0, 1.0, 1.0)] - first[SPACING]) > 1e-3


def test_bad_spacing_is_a_clear_error():
  vol = np.zeros((4, 4, 4, 1), np.float32)
  for bad in [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, np.nan, 1.0)]:
    with pytest.raises(ValueError, match="finite positive voxel sizes"):
      segment_one(jax.random.key(0), vol, Config(n_channels=4, iterations=1), spacing=bad)


def test_standardise_gives_zero_mean_unit_variance():
  vol, _, _ = two_ellipsoids((4, 6, 8))
  s = volume.standardise(vol)
  np.testing.assert_allclose(s.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(s.std(), 1.0, atol=1e-4)
  np.testing.assert_array_equal(volume.standardise(np.ones((2, 3, 3, 1))), 0.0)


# ------------------------------------------------------------------------ segmentation


def test_3d_sgscn_recovers_two_ellipsoids_with_anisotropic_spacing():
  vol, dark, bright = two_ellipsoids()
  r = volume.segment_volume(jax.random.key(2), vol, Config(n_channels=16, iterations=40),
                            mode="3d", spacing=SPACING)
  labels = np.asarray(r.labels)
  assert labels.shape == (16, 32, 32) and bool(r.finite)
  for mask in (dark, bright):
    assert metrics.dice(selection.select(labels, "largest_overlap", mask), mask) > 0.9
  # The two ellipsoids are two different clusters.
  assert (selection.largest_overlap_cluster(labels, dark)
          != selection.largest_overlap_cluster(labels, bright))


def tube(shape=(8, 24, 24), seed=0):
  """A bright tube (radius 5) drifting through every slice of a dark noisy volume."""
  d, h, w = shape
  yy, xx = np.mgrid[:h, :w]
  mask = np.stack([(yy - 12 + 0.3 * z) ** 2 + (xx - 9 - 0.8 * z) ** 2 < 25 for z in range(d)])
  v = np.where(mask, 0.85, 0.15).astype(np.float32)
  v += np.random.default_rng(seed).normal(scale=0.04, size=shape).astype(np.float32)
  return np.clip(v, 0, 1)[..., None], mask


def test_slice_mode_with_consistent_labels_keeps_one_label_for_a_tube():
  vol, mask = tube()
  config = Config(n_channels=12, iterations=20)
  r = volume.segment_slices(jax.random.key(0), vol, config, spacing=(2.0, 1.0, 1.0))
  labels = np.asarray(r.labels)
  inside = [np.bincount(labels[z][mask[z]]).argmax() for z in range(len(labels))]
  assert len(set(inside)) == 1, inside  # one label for the tube in every slice
  assert metrics.dice(selection.select(labels, "largest_overlap", mask), mask) > 0.9
  # Without consistency the slices share no label, so one label holds one slice only.
  r = volume.segment_slices(jax.random.key(0), vol, config, spacing=(2.0, 1.0, 1.0),
                            consistent=False)
  inside = [np.bincount(np.asarray(r.labels)[z][mask[z]]).argmax() for z in range(len(labels))]
  assert len(set(inside)) == len(labels)


def test_each_slice_is_the_single_image_run_with_its_own_key():
  vol, _ = tube((4, 5, 16))
  config = Config(n_channels=8, iterations=3, early_stop=False)
  key = jax.random.key(5)
  r = volume.segment_slices(key, vol, config, axis=1, consistent=False)
  assert r.labels.shape == (4, 5, 16)
  for i in range(5):
    one = np.asarray(segment_one(jax.random.fold_in(key, i), vol[:, i], config).labels)
    got = np.asarray(r.labels)[:, i]
    # The same partition up to renaming: each label of one maps to exactly one of the other.
    pairs = set(zip(one.ravel(), got.ravel()))
    assert len(pairs) == len(np.unique(one)) == len(np.unique(got))
