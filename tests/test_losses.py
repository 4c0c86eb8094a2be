"""Each loss term against a NumPy computation on hand-built inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax.core import losses


def _np_softmax(s):
  e = np.exp(s - s.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.fixture
def response():
  return np.random.default_rng(0).normal(size=(5, 7, 4)).astype(np.float32)


def _grid(h, w):
  return np.asarray(losses.coordinate_grid((h, w)))


def test_coordinate_grid_spans_minus_one_to_one():
  x = _grid(3, 5)
  assert x.shape == (3, 5, 2)
  np.testing.assert_allclose(x[:, 0, 0], [-1, 0, 1])
  np.testing.assert_allclose(x[0, :, 1], [-1, -0.5, 0, 0.5, 1])


def test_coordinate_grid_with_spacing_keeps_physical_proportions():
  x = np.asarray(losses.coordinate_grid((3, 5), spacing=(2.0, 1.0)))
  # extents: 2 * 2 = 4 and 4 * 1 = 4: both span [-1, 1]
  np.testing.assert_allclose(x[:, 0, 0], [-1, 0, 1])
  x = np.asarray(losses.coordinate_grid((3, 5), spacing=(1.0, 1.0)))
  np.testing.assert_allclose(x[:, 0, 0], [-0.5, 0, 0.5])


def test_cross_entropy_matches_numpy(response):
  value = losses.cross_entropy_loss(response, None, None)
  targets = response.argmax(-1)
  logp = np.log(_np_softmax(response.astype(np.float64)))
  expected = -np.take_along_axis(logp, targets[..., None], -1).mean()
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_cross_entropy_targets_are_held_constant(response):
  # d/dS of -log softmax(S)[t] with t fixed is softmax(S) - onehot(t), divided by P.
  grad = jax.grad(losses.cross_entropy_loss)(jnp.asarray(response), None, None)
  p = _np_softmax(response.astype(np.float64))
  onehot = np.eye(4)[response.argmax(-1)]
  np.testing.assert_allclose(grad, (p - onehot) / 35, atol=1e-7)


def test_sparse_spatial_matches_numpy(response):
  value = losses.sparse_spatial_loss(response, None, None)
  expected = (np.abs(response[1:] - response[:-1]).mean()
              + np.abs(response[:, 1:] - response[:, :-1]).mean())
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_sparse_spatial_in_3d_sums_all_three_axes():
  s = np.random.default_rng(1).normal(size=(3, 4, 5, 2)).astype(np.float32)
  expected = sum(np.abs(np.diff(s, axis=a)).mean() for a in range(3))
  np.testing.assert_allclose(losses.sparse_spatial_loss(s, None, None), expected, rtol=1e-6)


def test_constant_response_has_no_spatial_loss():
  s = np.ones((4, 4, 3), np.float32)
  assert float(losses.sparse_spatial_loss(s, None, None)) == 0.0


def test_soft_cluster_moments_match_numpy(response):
  x = _grid(5, 7)
  mass, mu, var = losses.soft_cluster_moments(response, x)
  q = _np_softmax(response.astype(np.float64)).reshape(-1, 4)
  xs = x.reshape(-1, 2).astype(np.float64)
  for c in range(4):
    w = q[:, c] / q[:, c].sum()
    centre = (w[:, None] * xs).sum(0)
    np.testing.assert_allclose(mu[c], centre, atol=1e-5)
    np.testing.assert_allclose(var[c], (w * ((xs - centre) ** 2).sum(-1)).sum(), atol=1e-5)
  np.testing.assert_allclose(mass, q.mean(0), atol=1e-6)
  np.testing.assert_allclose(float(mass.sum()), 1.0, atol=1e-6)


def test_context_consistency_matches_numpy(response):
  x = _grid(5, 7)
  q = _np_softmax(response.astype(np.float64)).reshape(-1, 4)
  xs = x.reshape(-1, 2).astype(np.float64)
  expected = 0.0
  for c in range(4):
    w = q[:, c] / q[:, c].sum()
    centre = (w[:, None] * xs).sum(0)
    expected += (w * ((xs - centre) ** 2).sum(-1)).sum()
  expected /= 2 * 4
  np.testing.assert_allclose(losses.context_consistency_loss(response, None, x), expected,
                             rtol=1e-5)


def _one_hot_response(labels, c, scale=20.0):
  return (np.eye(c)[labels] * scale).astype(np.float32)


def test_context_consistency_prefers_a_compact_blob_to_scattered_pixels():
  h = w = 32
  yy, xx = np.mgrid[:h, :w]
  blob = ((yy - 16) ** 2 + (xx - 16) ** 2) < 36
  scattered = np.zeros_like(blob)
  idx = np.random.default_rng(0).permutation(h * w)[: blob.sum()]
  scattered.ravel()[idx] = True
  x = _grid(h, w)
  compact = losses.context_consistency_loss(_one_hot_response(blob.astype(int), 2), None, x)
  spread = losses.context_consistency_loss(_one_hot_response(scattered.astype(int), 2), None, x)
  # The blob cluster is far more compact; the complement barely changes.
  assert float(compact) < float(spread) - 0.03, (float(compact), float(spread))


def test_context_consistency_is_bounded_and_has_finite_gradients():
  rng = np.random.default_rng(2)
  x = _grid(16, 16)
  for scale in (1e-3, 1.0, 1e3):
    s = jnp.asarray(rng.normal(size=(16, 16, 10)) * scale, jnp.float32)
    value, grad = jax.value_and_grad(losses.context_consistency_loss)(s, None, x)
    assert 0.0 <= float(value) <= 1.0
    assert np.all(np.isfinite(grad))


def test_all_gradients_finite_on_random_input():
  rng = np.random.default_rng(3)
  s = jnp.asarray(rng.normal(size=(8, 9, 6)), jnp.float32)
  img = jnp.zeros((8, 9, 3))
  x = losses.coordinate_grid((8, 9))
  weights = (("cross_entropy", 1.0), ("sparse_spatial", 5.0), ("context_consistency", 1.0))
  grad = jax.grad(lambda s: losses.total_loss(s, img, x, weights)[0])(s)
  assert np.all(np.isfinite(grad))


def test_total_loss_is_the_weighted_sum_of_named_terms(response):
  x = _grid(5, 7)
  weights = (("cross_entropy", 2.0), ("sparse_spatial", 0.5))
  total, terms = losses.total_loss(response, None, x, weights)
  assert set(terms) == {"cross_entropy", "sparse_spatial"}
  np.testing.assert_allclose(total, 2 * terms["cross_entropy"] + 0.5 * terms["sparse_spatial"],
                             rtol=1e-6)


def test_unknown_term_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown loss term 'nope'"):
    losses.total_loss(np.zeros((2, 2, 2)), None, None, (("nope", 1.0),))


def test_mass_weighted_variant_cannot_see_compactness():
  """Law of total variance: sum_c m_c var_c = total variance - spread of the centres."""
  h = w = 32
  yy, xx = np.mgrid[:h, :w]
  blob = (((yy - 15.5) ** 2 + (xx - 15.5) ** 2) < 36).astype(int)
  perm = np.random.default_rng(0).permutation(h * w)
  scattered = blob.ravel()[perm].reshape(h, w)
  x = _grid(h, w)
  f = losses.context_consistency_mass_weighted_loss
  a = float(f(_one_hot_response(blob, 2), None, x))
  b = float(f(_one_hot_response(scattered, 2), None, x))
  assert abs(a - b) < 0.01


def _plain_sparse_spatial(response):
  return sum(jnp.mean(jnp.abs(jnp.diff(response, axis=a))) for a in range(response.ndim - 1))


def _plain_context_consistency(response, coordinates):
  _, _, var = losses.soft_cluster_moments(response, coordinates)
  return jnp.mean(var) / coordinates.shape[-1]


@pytest.mark.parametrize("shape", [(9, 7, 5), (4, 6, 5, 3)])
def test_written_out_loss_gradients_equal_autodiff(shape):
  """L_ss and L_cc carry written-out gradients (recomputed in the backward pass to save
  memory): values and gradients must equal `jax.grad` of the plain formulas, 2D and 3D."""
  response = 2.0 * jax.random.normal(jax.random.key(3), shape)
  coordinates = losses.coordinate_grid(shape[:-1], spacing=(1.0,) * (len(shape) - 2) + (2.5,))
  image = jnp.zeros(shape[:-1] + (1,))

  # each side as one jitted program (value and gradient), as the loop runs them: eagerly,
  # every small operation of the backward passes was compiled on its own
  @jax.jit
  def written_out(response):
    ss, d_ss = jax.value_and_grad(losses.sparse_spatial_loss)(response, image, coordinates)
    cc, d_cc = jax.value_and_grad(losses.context_consistency_loss)(response, image,
                                                                   coordinates)
    return ss, d_ss, cc, d_cc

  @jax.jit
  def plain(response):
    ss, d_ss = jax.value_and_grad(_plain_sparse_spatial)(response)
    cc, d_cc = jax.value_and_grad(_plain_context_consistency)(response, coordinates)
    return ss, d_ss, cc, d_cc

  ss, d_ss, cc, d_cc = written_out(response)
  want_ss, want_d_ss, want_cc, want_d_cc = plain(response)
  np.testing.assert_allclose(ss, want_ss, rtol=1e-6)
  np.testing.assert_allclose(d_ss, want_d_ss, rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(cc, want_cc, rtol=1e-6)
  np.testing.assert_allclose(d_cc, want_d_cc, rtol=1e-4, atol=1e-9)


# ---------------------------------------------------------------------------- volumes


def test_coordinate_grid_3d_with_anisotropic_spacing_is_physical():
  x = np.asarray(losses.coordinate_grid((3, 5, 9), spacing=(4.0, 1.0, 0.5)))
  # extents: 2 * 4 = 8, 4 * 1 = 4, 8 * 0.5 = 4: z spans [-1, 1], y and x [-0.5, 0.5]
  np.testing.assert_allclose(x[:, 0, 0, 0], [-1, 0, 1])
  np.testing.assert_allclose(x[0, :, 0, 1], np.linspace(-0.5, 0.5, 5), atol=1e-7)
  np.testing.assert_allclose(x[0, 0, :, 2], np.linspace(-0.5, 0.5, 9), atol=1e-7)
  # One physical millimetre is the same coordinate step along every axis (4 mm vs 0.5 mm).
  np.testing.assert_allclose(x[1, 0, 0, 0] - x[0, 0, 0, 0], 8 * (x[0, 0, 1, 2] - x[0, 0, 0, 2]),
                             rtol=1e-6)
  traced = jax.jit(lambda s: losses.coordinate_grid((3, 5, 9), s))(jnp.asarray([4.0, 1.0, 0.5]))
  np.testing.assert_allclose(traced, x, rtol=1e-6)
  with pytest.raises(ValueError, match="one entry per spatial axis"):
    losses.coordinate_grid((3, 5, 9), spacing=(1.0, 1.0))


def test_context_consistency_in_3d_with_spacing_matches_numpy():
  s = np.random.default_rng(4).normal(size=(3, 4, 5, 3)).astype(np.float32)
  x = np.asarray(losses.coordinate_grid((3, 4, 5), spacing=(3.0, 1.0, 0.8)), np.float64)
  q = _np_softmax(s.astype(np.float64)).reshape(-1, 3)
  xs = x.reshape(-1, 3)
  expected = 0.0
  for c in range(3):
    w = q[:, c] / q[:, c].sum()
    centre = (w[:, None] * xs).sum(0)
    expected += (w * ((xs - centre) ** 2).sum(-1)).sum()
  expected /= 3 * 3
  np.testing.assert_allclose(losses.context_consistency_loss(s, None, x), expected, rtol=1e-5)


def test_context_consistency_sees_physical_compactness_in_anisotropic_volumes():
  """A ball in millimetres is compact once the spacing is known, a flat slab is not."""
  d, h, w = 8, 24, 24
  zz, yy, xx = np.meshgrid(np.arange(d) * 3.0, np.arange(h) * 1.0, np.arange(w) * 1.0,
                           indexing="ij")
  ball = ((zz - 10.5) ** 2 + (yy - 11.5) ** 2 + (xx - 11.5) ** 2) < 49   # round in mm
  slab = np.zeros_like(ball)
  slab[3:5] = True  # two whole slices: flat in mm
  x = losses.coordinate_grid((d, h, w), (3.0, 1.0, 1.0))
  a = losses.context_consistency_loss(_one_hot_response(ball.astype(int), 2), None, x)
  b = losses.context_consistency_loss(_one_hot_response(slab.astype(int), 2), None, x)
  assert float(a) < float(b)
