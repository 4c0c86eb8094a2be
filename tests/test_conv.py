"""The hand-written convolution backward equals JAX's own gradient of the plain convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax.core import conv


@pytest.mark.parametrize("spatial,k", [((7, 9), 3), ((4, 5, 6), 3), ((6, 7), 5), ((11,), 3)])
def test_custom_vjp_matches_reference(spatial, k):
  rng = np.random.default_rng(0)
  rank = len(spatial)
  x = jnp.asarray(rng.normal(size=spatial + (3,)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k,) * rank + (3, 4)), jnp.float32)
  probe = jnp.asarray(rng.normal(size=spatial + (4,)), jnp.float32)

  def objective(f):
    return lambda x, w: jnp.sum(jnp.sin(f(x, w)) * probe)

  np.testing.assert_allclose(conv.conv_same(x, w), conv.conv_same_reference(x, w), rtol=1e-6)
  got = jax.grad(objective(conv.conv_same), argnums=(0, 1))(x, w)
  want = jax.grad(objective(conv.conv_same_reference), argnums=(0, 1))(x, w)
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4)


def test_conv_is_cross_correlation_with_zero_padding():
  x = jnp.arange(9.0).reshape(3, 3, 1)
  w = jnp.zeros((3, 3, 1, 1)).at[0, 0, 0, 0].set(1.0)  # picks the up-left neighbour
  y = conv.conv_same(x, w)[..., 0]
  np.testing.assert_array_equal(y, [[0, 0, 0], [0, 0, 1], [0, 3, 4]])


def _descent_in_loop_under_vmap(f, xs, w):
  """Three gradient steps on w inside `fori_loop`, vmapped over the images `xs`."""
  def one(x):
    def body(_, w):
      return w - 0.01 * jax.grad(lambda w: jnp.sum(f(x, w) ** 2))(w)
    return jax.lax.fori_loop(0, 3, body, w)
  return jax.jit(jax.vmap(one))(xs)


def test_custom_vjp_inside_a_loop_under_vmap():
  rng = np.random.default_rng(1)
  xs = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)

  np.testing.assert_allclose(_descent_in_loop_under_vmap(conv.conv_same, xs, w),
                             _descent_in_loop_under_vmap(conv.conv_same_reference, xs, w),
                             rtol=1e-4, atol=1e-5)


def test_3d_taps_scan_inside_a_loop_under_vmap():
  rng = np.random.default_rng(2)
  xs = jnp.asarray(rng.normal(size=(2, 4, 5, 6, 2)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 3, 2, 3)), jnp.float32)

  np.testing.assert_allclose(_descent_in_loop_under_vmap(conv.conv_same, xs, w),
                             _descent_in_loop_under_vmap(conv.conv_same_reference, xs, w),
                             rtol=1e-4, atol=1e-4)
