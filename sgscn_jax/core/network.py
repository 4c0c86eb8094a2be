"""The feature network F of SGSCN and its pure functions `init` and `apply`.

F maps one image `[*spatial, C_in]` (2D `[H, W, C_in]` or 3D `[D, H, W, C_in]`) to the
response map S `[*spatial, C]`, C = `config.n_channels` (published code, Kim et al. 2020):

    n_conv x [conv 3^r (-> C) -> ReLU -> BN]  then  conv 1 (C -> C) -> BN      (no final ReLU)

BN normalises every channel with the statistics of this one image (always "train mode",
also for the final prediction), so there is no running state:
    BN(y)_c = gamma_c * (y_c - mean_p y_c) / sqrt(var_p y_c + eps) + beta_c.
Initialisation is PyTorch's default: conv weights and biases ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)),
gamma = 1, beta = 0. The spatial rank r is read from the input, so 2D and 3D share this code.

With `config.architecture == "s3net"` the functions `init` and `apply` build S3-Net's
network instead (`sgscn_jax.core.s3net`, the other module that imports Flax); the loop,
the losses and batching see the same pytree of parameters and the same `[*spatial, C]`
response. `apply_consistency_head` is the head the transformation-consistency loss reads:
S itself for SGSCN, the auxiliary head for S3-Net.

This module and `s3net` are the only ones that import Flax; everything else sees a pytree
of parameters.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgscn_jax.core import conv
from sgscn_jax.core.config import Config

Params = Any  # a pytree of arrays


def _torch_uniform(fan_in: int):
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class SpatialConv(nn.Module):
  """Stride-1 'same' convolution with kernel size `kernel_size` along every spatial axis.

  `padding` "zeros" (the published code) or "reflect": the input is mirrored by
  `kernel_size // 2` pixels at every face (`jnp.pad(mode="reflect")`), convolved, and the
  inside cropped, so border pixels see image content instead of zeros.
  """
  features: int
  kernel_size: int
  padding: str = "zeros"

  @nn.compact
  def __call__(self, x):
    rank, c_in = x.ndim - 1, x.shape[-1]
    fan_in = c_in * self.kernel_size ** rank
    kernel = self.param("kernel", _torch_uniform(fan_in),
                        (self.kernel_size,) * rank + (c_in, self.features))
    bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
    if self.kernel_size == 1:
      y = x @ kernel.reshape(c_in, self.features)  # a 1x1 conv is a matmul
    elif self.padding == "reflect":
      r = self.kernel_size // 2
      y = conv.conv_same(jnp.pad(x, [(r, r)] * rank + [(0, 0)], mode="reflect"), kernel)
      y = y[tuple(slice(r, n + r) for n in x.shape[:-1])]
    else:
      y = conv.conv_same(x, kernel)
    return y + per_channel(bias, y.ndim)


def per_channel(v: jax.Array, ndim: int) -> jax.Array:
  """A `[C]` vector shaped `[1, ..., 1, C]` to broadcast over an `ndim`-rank `[*spatial, C]`
  array explicitly (the tests run with `jax_numpy_rank_promotion="raise"`)."""
  return v.reshape((1,) * (ndim - 1) + (-1,))


class ImageBatchNorm(nn.Module):
  """BatchNorm over the pixels of one image (batch statistics, no running averages)."""
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, y):
    features = y.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    axes = tuple(range(y.ndim - 1))
    mean = jnp.mean(y, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(y - mean), axis=axes, keepdims=True)  # biased, as PyTorch
    return ((y - mean) * jax.lax.rsqrt(var + self.epsilon) * per_channel(scale, y.ndim)
            + per_channel(bias, y.ndim))


class ResponseNetwork(nn.Module):
  """F: image `[*spatial, C_in]` -> response S `[*spatial, n_channels]`."""
  n_channels: int = 100
  n_conv: int = 2
  bn_epsilon: float = 1e-5
  padding: str = "zeros"

  @nn.compact
  def __call__(self, image):
    h = image
    for i in range(self.n_conv):
      h = SpatialConv(self.n_channels, 3, self.padding, name=f"conv{i}")(h)
      h = nn.relu(h)
      h = ImageBatchNorm(self.bn_epsilon, name=f"bn{i}")(h)
    h = SpatialConv(self.n_channels, 1, name="conv_final")(h)
    return ImageBatchNorm(self.bn_epsilon, name="bn_final")(h)


def _module(config: Config) -> nn.Module:
  if config.architecture == "s3net":
    from sgscn_jax.core import s3net  # s3net builds on this module's layers
    return s3net.S3Net(config.n_channels, config.n_conv, config.bn_epsilon, config.padding)
  return ResponseNetwork(config.n_channels, config.n_conv, config.bn_epsilon, config.padding)


def init(key: jax.Array, image_shape: tuple, config: Config) -> Params:
  """Fresh parameters for images of shape `image_shape = (*spatial, C_in)`."""
  dummy = jnp.zeros((3,) * (len(image_shape) - 1) + tuple(image_shape[-1:]), jnp.float32)
  return _module(config).init(key, dummy)["params"]


def apply(params: Params, image: jax.Array, config: Config) -> jax.Array:
  """The response map S `[*spatial, n_channels]` of `image` `[*spatial, C_in]`."""
  return _module(config).apply({"params": params}, image)


def apply_consistency_head(params: Params, image: jax.Array, config: Config) -> jax.Array:
  """The head L_AT compares with the warped response (`consistency`): `[*spatial, C]`;
  `apply` itself for SGSCN, the auxiliary head for S3-Net."""
  if config.architecture == "s3net":
    return _module(config).apply({"params": params}, image, head="aux")
  return apply(params, image, config)


def parameter_count(params: Params) -> int:
  return sum(int(p.size) for p in jax.tree.leaves(params))
