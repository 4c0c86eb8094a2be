"""S3-Net's losses done right: the edge-aware L_S, the affine warps and L_AT, the context."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import Config, segment_one
from sgscn_jax.core import consistency, losses, warp


def _np_edge_aware(s, image, sigma):
  total = 0.0
  for axis in range(s.ndim - 1):
    ds = np.abs(np.diff(s, axis=axis))
    w = np.exp(-np.sum(np.diff(image, axis=axis) ** 2, axis=-1, keepdims=True) / sigma ** 2)
    total += np.mean(ds * w)
  return total


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5)])
def test_edge_aware_spatial_matches_numpy(shape):
  rng = np.random.default_rng(0)
  s = rng.normal(size=shape + (4,)).astype(np.float32)
  image = rng.random(shape + (3,)).astype(np.float32)
  image[..., : shape[-1] // 2, :] += 0.5  # an edge along the last axis
  got = losses.edge_aware_spatial_loss(jnp.asarray(s), jnp.asarray(image), None)
  np.testing.assert_allclose(got, _np_edge_aware(s, image, losses.EDGE_SIGMA), rtol=1e-5)
  assert losses.LOSS_TERMS["edge_aware_spatial"] is losses.edge_aware_spatial_loss


def test_edge_aware_spatial_on_a_hand_built_edge():
  # S jumps by 1 exactly where the image jumps by 1: the jump costs exp(-1 / sigma^2) ~ 0;
  # the same jump of S on a flat image costs its full L1 share.
  s = np.zeros((2, 4, 1), np.float32)
  s[:, 2:] = 1.0
  edge = np.zeros((2, 4, 1), np.float32)
  edge[:, 2:] = 1.0
  flat = np.zeros((2, 4, 1), np.float32)
  assert float(losses.edge_aware_spatial_loss(s, edge, None)) < 1e-20
  # axis 1: two jumps (one per row) among 2 x 3 differences; axis 0: none
  np.testing.assert_allclose(losses.edge_aware_spatial_loss(s, flat, None), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.sparse_spatial_loss(s, flat, None), 1 / 3, rtol=1e-6)


def test_edge_aware_spatial_gradient_equals_autodiff():
  rng = np.random.default_rng(1)
  s = jnp.asarray(rng.normal(size=(6, 5, 3)).astype(np.float32))
  image = jnp.asarray(rng.random((6, 5, 2)).astype(np.float32))

  def plain(x):  # the formula, differentiated by JAX itself
    return sum(jnp.mean(jnp.abs(jnp.diff(x, axis=a)) * jnp.broadcast_to(
        w, jnp.diff(x, axis=a).shape)) for a, w in enumerate(losses.edge_weights(image)))

  got = jax.grad(lambda x: losses.edge_aware_spatial_loss(x, image, None))(s)
  np.testing.assert_allclose(got, jax.grad(plain)(s), rtol=1e-5, atol=1e-8)


def _smooth_image(h, w, c=3):
  y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
  return np.stack([np.sin(2 * x + k) * np.cos(3 * y - k) for k in range(c)], -1).astype(
      np.float32)


def test_warp_matches_a_numpy_bilinear_sampler():
  rng = np.random.default_rng(2)
  image = rng.random((6, 7, 2)).astype(np.float32)
  affine = warp.Affine(jnp.asarray([[0.9, -0.3], [0.2, 1.1]], jnp.float32),
                       jnp.asarray([0.4, -0.7], jnp.float32))
  got = np.asarray(warp.warp(jnp.asarray(image), affine))
  c = np.array([2.5, 3.0])
  want = np.zeros_like(image)
  for i in range(6):
    for j in range(7):
      r, q = c + np.asarray(affine.matrix) @ (np.array([i, j]) - c) + np.asarray(affine.shift)
      r0, q0 = int(np.floor(r)), int(np.floor(q))
      for a, wa in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
        for b, wb in ((q0, 1 - (q - q0)), (q0 + 1, q - q0)):
          if 0 <= a < 6 and 0 <= b < 7:
            want[i, j] += wa * wb * image[a, b]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _kept(affine, shape):
  """Pixels whose round trip (warp by `affine`, then by its inverse) stays inside the image."""
  inv = warp.inverse(affine)
  there = warp.valid_mask(affine, shape)[..., None].astype(jnp.float32)
  return np.asarray(warp.valid_mask(inv, shape)) & (
      np.asarray(warp.warp(there, inv))[..., 0] > 0.999)


def test_grid_transform_and_its_inverse_round_trip_exactly():
  image = jnp.asarray(np.random.default_rng(3).random((8, 8, 3)).astype(np.float32))
  # a 90-degree rotation with a flip and an integer shift map the grid onto itself
  affine = warp.Affine(jnp.asarray([[0.0, -1.0], [-1.0, 0.0]], jnp.float32),
                       jnp.asarray([1.0, -2.0], jnp.float32))
  back = warp.warp(warp.warp(image, affine), warp.inverse(affine))
  keep = _kept(affine, (8, 8))
  assert 0 < keep.sum() < 64
  np.testing.assert_array_equal(np.asarray(back)[keep], np.asarray(image)[keep])
  np.testing.assert_array_equal(np.asarray(back)[~keep], 0.0)


def test_random_transform_and_its_inverse_round_trip_on_the_grid():
  for seed in range(5):
    affine = warp.random_affine(jax.random.key(seed), (16, 12))
    x = warp.source_positions(affine, (16, 12))
    # the inverse map sends every output position's source back to that output position
    inv = warp.inverse(affine)
    c = jnp.asarray([7.5, 5.5])
    back = jnp.einsum("ij,hwj->hwi", inv.matrix, x - c.reshape(1, 1, 2)) + (
        c + inv.shift).reshape(1, 1, 2)
    np.testing.assert_allclose(back, warp.source_positions(warp.identity(), (16, 12)),
                               atol=1e-4)
    image = jnp.asarray(_smooth_image(48, 40))
    round_trip = warp.warp(warp.warp(image, affine), inv)
    keep = _kept(affine, (48, 40))
    assert keep.mean() > 0.3
    # bilinear twice on a smooth image: close, not exact
    np.testing.assert_allclose(np.asarray(round_trip)[keep], np.asarray(image)[keep], atol=0.05)


def test_random_affine_draws_what_its_range_says():
  spec = warp.AffineRange()
  for seed in range(20):
    a = warp.random_affine(jax.random.key(seed), (32, 32), spec)
    det = float(jnp.linalg.det(a.matrix))
    scale = np.sqrt(abs(det))
    assert 1 / spec.max_scale - 1e-5 <= scale <= spec.max_scale + 1e-5
    assert np.all(np.abs(np.asarray(a.shift)) <= spec.max_shift * 32 + 1e-5)


def _pointwise(w):
  return lambda image: image @ w  # commutes with any warp that maps the grid onto itself


@pytest.mark.parametrize("variant", consistency.VARIANTS)
def test_transform_consistency_is_zero_for_a_commuting_response(variant):
  rng = np.random.default_rng(4)
  image = jnp.asarray(rng.random((10, 10, 3)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(3, 5)).astype(np.float32) * 3)
  apply = _pointwise(w)
  affine = warp.Affine(jnp.asarray([[0.0, 1.0], [-1.0, 0.0]], jnp.float32),  # rot90
                       jnp.asarray([0.0, 2.0], jnp.float32))
  loss = consistency.transform_consistency(apply(image), apply(warp.warp(image, affine)),
                                           affine, variant)
  ce_floor = 0.0
  if variant == "ce":  # CE against its own argmax: the entropy floor -log max softmax
    q = jax.nn.softmax(apply(warp.warp(image, affine)), -1)
    m = warp.valid_mask(affine, (10, 10))
    ce_floor = float(jnp.sum(jnp.where(m, -jnp.log(q.max(-1)), 0)) / jnp.sum(m))
  np.testing.assert_allclose(loss, ce_floor, atol=1e-5)


@pytest.mark.parametrize("variant", consistency.VARIANTS)
def test_transform_consistency_is_positive_for_a_response_that_does_not_commute(variant):
  rng = np.random.default_rng(5)
  image = jnp.asarray(rng.random((10, 10, 3)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(3, 5)).astype(np.float32) * 3)
  position = jnp.asarray(rng.normal(size=(10, 10, 5)).astype(np.float32) * 3)
  apply = lambda x: x @ w + position  # depends on where a pixel is: not equivariant
  affine = warp.Affine(jnp.asarray([[0.0, 1.0], [-1.0, 0.0]], jnp.float32),
                       jnp.asarray([0.0, 2.0], jnp.float32))
  loss = consistency.transform_consistency(apply(image), apply(warp.warp(image, affine)),
                                           affine, variant)
  commuting = consistency.transform_consistency(
      image @ w, warp.warp(image, affine) @ w, affine, variant)
  assert float(loss) > float(commuting) + 0.1


def test_transform_consistency_kl_matches_numpy_and_masks_outside_pixels():
  rng = np.random.default_rng(6)
  s = rng.normal(size=(6, 6, 3)).astype(np.float32)
  q = rng.normal(size=(6, 6, 3)).astype(np.float32)
  affine = warp.Affine(jnp.eye(2, dtype=jnp.float32), jnp.asarray([0.0, 2.0], jnp.float32))
  got = consistency.transform_consistency(jnp.asarray(s), jnp.asarray(q), affine, "kl")
  e = np.exp(s - s.max(-1, keepdims=True))
  p = e / e.sum(-1, keepdims=True)
  p_w = np.zeros_like(p)
  p_w[:, :4] = p[:, 2:]                                  # x(y) = y + (0, 2)
  eq = np.exp(q - q.max(-1, keepdims=True))
  qq = eq / eq.sum(-1, keepdims=True)
  kl = np.sum((p_w - qq) * (np.log(np.maximum(p_w, 1e-12)) - np.log(qq)), -1)
  np.testing.assert_allclose(got, kl[:, :4].mean(), rtol=1e-5)   # 2 columns came from outside
  targets = p_w[:, :4].argmax(-1)
  log_q = np.log(qq[:, :4])
  ce = -np.take_along_axis(log_q, targets[..., None], -1).mean()
  np.testing.assert_allclose(consistency.transform_consistency(
      jnp.asarray(s), jnp.asarray(q), affine, "ce"), ce, rtol=1e-5)


def test_context_terms_need_a_context_and_are_registered():
  assert losses.needs_context((("transform_consistency_kl", 0.2),))
  assert not losses.needs_context(Config().active_terms)
  s = jnp.zeros((4, 4, 3))
  with pytest.raises(ValueError, match="LossContext"):
    losses.total_loss(s, jnp.zeros((4, 4, 3)), None, (("transform_consistency_ce", 1.0),))
  ctx = losses.LossContext(apply=lambda x: x, key=jax.random.key(0), step=jnp.array(0))
  total, terms = losses.total_loss(s, jnp.zeros((4, 4, 3)), None,
                                   (("transform_consistency_kl", 1.0),), ctx)
  assert np.isfinite(float(total)) and set(terms) == {"transform_consistency_kl"}


def test_sgscn_network_runs_with_the_s3net_losses_and_is_reproducible():
  image = _smooth_image(16, 16) * 0.5 + 0.5
  cfg = Config(n_channels=6, iterations=3, early_stop=False).with_weights(
      edge_aware_spatial=2.0, transform_consistency_ce=0.5)
  a = segment_one(jax.random.key(0), image, cfg)
  b = segment_one(jax.random.key(0), image, cfg)
  np.testing.assert_array_equal(a.history.total, b.history.total)
  assert np.all(np.isfinite(np.asarray(a.history.terms["transform_consistency_ce"])))
  assert set(a.history.terms) == {"cross_entropy", "sparse_spatial", "context_consistency",
                                  "edge_aware_spatial", "transform_consistency_ce"}
  # another key draws other transforms
  c = segment_one(jax.random.key(1), image, cfg)
  assert not np.array_equal(np.asarray(a.history.total), np.asarray(c.history.total))
