"""The feature network F of SGSCN and its pure functions `init` and `apply`.

F maps one image `[*spatial, C_in]` (2D `[H, W, C_in]` or 3D `[D, H, W, C_in]`) to the
response map S `[*spatial, C]`, C = `config.n_channels` (published code, Kim et al. 2020):

    n_conv x [conv 3^r (-> C) -> ReLU -> BN]  then  conv 1 (C -> C) -> BN      (no final ReLU)

BN normalises every channel with the statistics of this one image (always "train mode",
also for the final prediction), so there is no running state:
    BN(y)_c = gamma_c * (y_c - mean_p y_c) / sqrt(var_p y_c + eps) + beta_c.
Initialisation is PyTorch's default: conv weights and biases
~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)), gamma = 1, beta = 0. The spatial rank r is read from
the input, so 2D and 3D share this code.

With `config.architecture == "s3net"` the functions `init` and `apply` build S3-Net's
network instead (`sgscn_jax.core.s3net`); the loop, the losses and batching see the same
pytree of parameters and the same `[*spatial, C]` response. `apply_consistency_head` is the
head the transformation-consistency loss reads: S itself for SGSCN, the auxiliary head for
S3-Net.

Both networks are built from the layers of `sgscn_jax.core.layers` (`SpatialConv`,
`ImageBatchNorm`); `layers`, this module and `s3net` are the only ones that import Flax;
everything else sees a pytree of parameters.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgscn_jax.core import s3net
from sgscn_jax.core.config import Config
from sgscn_jax.core.layers import ImageBatchNorm, SpatialConv

Params = Any  # a pytree of arrays


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


def module(config: Config) -> nn.Module:
  """The Flax module `config` describes (SGSCN's `ResponseNetwork`, or `s3net.S3Net` with
  its deformable convolution's offset bound)."""
  if config.architecture == "s3net":
    return s3net.S3Net(config.n_channels, config.n_conv, config.bn_epsilon, config.padding,
                       config.deform_offset_bound)
  return ResponseNetwork(config.n_channels, config.n_conv, config.bn_epsilon, config.padding)


def init(key: jax.Array, image_shape: tuple, config: Config) -> Params:
  """Fresh parameters for images of shape `image_shape = (*spatial, C_in)`."""
  dummy = jnp.zeros((3,) * (len(image_shape) - 1) + tuple(image_shape[-1:]), jnp.float32)
  return module(config).init(key, dummy)["params"]


def apply(params: Params, image: jax.Array, config: Config) -> jax.Array:
  """The response map S `[*spatial, n_channels]` of `image` `[*spatial, C_in]`."""
  return module(config).apply({"params": params}, image)


def apply_consistency_head(params: Params, image: jax.Array, config: Config) -> jax.Array:
  """The head L_AT compares with the warped response (`consistency`): `[*spatial, C]`;
  `apply` itself for SGSCN, the auxiliary head for S3-Net."""
  if config.architecture == "s3net":
    return module(config).apply({"params": params}, image, head="aux")
  return apply(params, image, config)


def parameter_count(params: Params) -> int:
  return sum(int(p.size) for p in jax.tree.leaves(params))
