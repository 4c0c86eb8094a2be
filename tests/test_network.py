"""The network's shapes, parameter count and initialisation equal the PyTorch model's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import Config
from sgscn_jax.core import layers, network


# Eager `network.init` compiles one random draw per parameter shape (seconds each); the
# tests that read parameter values run it as one jitted program, the tests that read only
# shapes and counts trace it (`jax.eval_shape`) and compute nothing.
_init = jax.jit(network.init, static_argnums=(1, 2))


def _shapes(image_shape, cfg):
  """The parameters of `network.init` as shapes (`jax.ShapeDtypeStruct`), not computed."""
  return jax.eval_shape(lambda: network.init(jax.random.key(0), image_shape, cfg))


def _torch_parameter_count(c_in, c, n_conv, rank=2):
  """Counted by hand from the published PyTorch model (conv weights + biases, BN gamma + beta)."""
  k = 3 ** rank
  first = c_in * c * k + c + 2 * c
  middle = (n_conv - 1) * (c * c * k + c + 2 * c)
  final = c * c + c + 2 * c
  return first + middle + final


@pytest.mark.parametrize("c_in,c,n_conv", [(3, 100, 2), (1, 100, 2), (3, 32, 3), (4, 16, 1)])
def test_parameter_count_equals_pytorch(c_in, c, n_conv):
  cfg = Config(n_channels=c, n_conv=n_conv)
  params = _shapes((8, 8, c_in), cfg)
  assert network.parameter_count(params) == _torch_parameter_count(c_in, c, n_conv)


def test_default_rgb_model_has_103600_parameters():
  params = _shapes((8, 8, 3), Config())
  assert network.parameter_count(params) == 103_600


def test_response_shape_2d_and_3d():
  cfg = Config(n_channels=12)
  img = jnp.zeros((5, 6, 3))
  params = _shapes(img.shape, cfg)
  assert jax.eval_shape(lambda p: network.apply(p, img + 0.1, cfg), params).shape == (5, 6, 12)
  vol = jnp.zeros((4, 5, 6, 1))
  params3 = _shapes(vol.shape, cfg)
  assert params3["conv0"]["kernel"].shape == (3, 3, 3, 1, 12)
  assert network.parameter_count(params3) == _torch_parameter_count(1, 12, 2, rank=3)
  assert jax.eval_shape(lambda p: network.apply(p, vol, cfg), params3).shape == (4, 5, 6, 12)


def test_initialisation_is_pytorch_default():
  params = _init(jax.random.key(0), (8, 8, 3), Config())
  for name, fan_in in (("conv0", 27), ("conv1", 900), ("conv_final", 100)):
    bound = 1 / np.sqrt(fan_in)
    for leaf in ("kernel", "bias"):
      v = np.asarray(params[name][leaf])
      assert np.abs(v).max() <= bound
      assert np.abs(v).max() > 0.9 * bound  # uniform over the whole interval
  kernel = np.asarray(params["conv1"]["kernel"])
  np.testing.assert_allclose(kernel.std(), 1 / np.sqrt(900) / np.sqrt(3), rtol=0.02)
  for name in ("bn0", "bn1", "bn_final"):
    np.testing.assert_array_equal(params[name]["scale"], 1.0)
    np.testing.assert_array_equal(params[name]["bias"], 0.0)


def test_batch_norm_uses_the_images_own_statistics():
  cfg = Config(n_channels=8)
  img = jax.random.uniform(jax.random.key(1), (16, 16, 3))
  params = _init(jax.random.key(0), img.shape, cfg)
  s = np.asarray(network.apply(params, img, cfg))
  np.testing.assert_allclose(s.mean((0, 1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(s.var((0, 1)), 1.0, rtol=1e-3)


def test_reflect_padding_is_a_convolution_of_the_mirrored_image():
  from sgscn_jax.core import conv
  x = jax.random.normal(jax.random.key(1), (7, 9, 3))
  kernel = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
  layer = layers.SpatialConv(4, 3, "reflect")
  params = {"params": {"kernel": kernel, "bias": jnp.zeros(4)}}
  mirrored = jnp.pad(x, [(1, 1), (1, 1), (0, 0)], mode="reflect")
  expected = conv.conv_same_reference(mirrored, kernel)[1:-1, 1:-1]
  np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)
  def layer_loss(k):
    return jnp.sum(jnp.square(layer.apply({"params": {"kernel": k, "bias": jnp.zeros(4)}}, x)))

  def reference_loss(k):
    return jnp.sum(jnp.square(conv.conv_same_reference(mirrored, k)[1:-1, 1:-1]))

  grad, want = jax.grad(layer_loss)(kernel), jax.grad(reference_loss)(kernel)
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="padding"):
    Config(padding="wrap")
