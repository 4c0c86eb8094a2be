"""The Flax layers that SGSCN's network (`network`) and S3-Net's (`s3net`) are built from.

Every layer works on ONE image `[*spatial, C]` of any spatial rank r (2D or 3D), is
initialised as PyTorch initialises its own (`torch_uniform`), and broadcasts its `[C]`
vectors explicitly (`per_channel`), so it runs under `jax_numpy_rank_promotion="raise"`:

  SpatialConv     stride-1 'same' convolution, kernel k^r, zero or reflect padding, bias
  ImageBatchNorm  BatchNorm with the statistics of this one image (no running state)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgscn_jax.core import conv


def torch_uniform(fan_in: int):
  """PyTorch's default initialiser of conv weights and biases:
  U(-1/sqrt(fan_in), +1/sqrt(fan_in))."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def per_channel(v: jax.Array, ndim: int) -> jax.Array:
  """A `[C]` vector shaped `[1, ..., 1, C]` to broadcast over an `ndim`-rank `[*spatial, C]`
  array explicitly (the tests run with `jax_numpy_rank_promotion="raise"`)."""
  return v.reshape((1,) * (ndim - 1) + (-1,))


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
    kernel = self.param("kernel", torch_uniform(fan_in),
                        (self.kernel_size,) * rank + (c_in, self.features))
    bias = self.param("bias", torch_uniform(fan_in), (self.features,))
    if self.kernel_size == 1:
      y = x @ kernel.reshape(c_in, self.features)  # a 1x1 conv is a matmul
    elif self.padding == "reflect":
      r = self.kernel_size // 2
      y = conv.conv_same(jnp.pad(x, [(r, r)] * rank + [(0, 0)], mode="reflect"), kernel)
      y = y[tuple(slice(r, n + r) for n in x.shape[:-1])]
    else:
      y = conv.conv_same(x, kernel)
    return y + per_channel(bias, y.ndim)


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
