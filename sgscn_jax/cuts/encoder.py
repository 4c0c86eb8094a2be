"""CUTS's network: the convolutional encoder and the patch decoder (the package's only Flax
import; the rest sees pytrees and functions).

Encoder (four blocks; CUTS_model.py's layout with `num_kernels` = c):

    h_1 = leaky_relu(norm(conv_5x5(x)))       channels c
    h_2 = leaky_relu(norm(conv_5x5(h_1)))     channels 2c
    h_3 = leaky_relu(norm(conv_5x5(h_2)))     channels 4c
    z   = leaky_relu(norm(conv_5x5(h_3)))     channels 8c = L (the embedding)

with VALID convolutions on an input padded once by R = 4 (k // 2) pixels (edge copies), so
that z[i, j] is a function of the (2R + 1)^2 window of the padded image around pixel (i, j)
and nothing else: a batch of (2R + 1)^2 crops gives exactly the embeddings the whole image
gives at those pixels. `norm` is a layer norm over the channels of each pixel (CUTS: batch
norm; a departure, docs/CUTS.md: batch statistics would make an embedding depend on the
batch). leaky_relu slope 0.01 (PyTorch's default).

Decoder (CUTS's PatchRecon): z `[L]` -> dense(C P^2) -> leaky_relu -> dense(C P^2), read as
the `[P, P, C]` patch centred on the pixel.
"""

from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgscn_jax.cuts.config import CutsConfig

Params = Dict[str, Any]


class _Encoder(nn.Module):
  num_kernels: int
  kernel_size: int

  @nn.compact
  def __call__(self, x):   # [..., H + 2R, W + 2R, C] -> [..., H, W, 8c]
    for scale in (1, 2, 4, 8):
      x = nn.Conv(self.num_kernels * scale, (self.kernel_size, self.kernel_size),
                  padding="VALID")(x)
      x = nn.leaky_relu(nn.LayerNorm(epsilon=1e-5)(x), 0.01)
    return x


class _Decoder(nn.Module):
  size: int   # C P^2

  @nn.compact
  def __call__(self, z):   # [..., L] -> [..., C P^2]
    return nn.Dense(self.size)(nn.leaky_relu(nn.Dense(self.size)(z), 0.01))


def _modules(in_channels: int, config: CutsConfig):
  return (_Encoder(config.num_kernels, config.kernel_size),
          _Decoder(in_channels * config.patch_size ** 2))


def latent_dim(config: CutsConfig) -> int:
  """L = 8 num_kernels."""
  return 8 * config.num_kernels


def init(key: jax.Array, in_channels: int, config: CutsConfig) -> Params:
  """`{"encoder": ..., "decoder": ...}` parameters (Flax's default initialisers)."""
  encoder, decoder = _modules(in_channels, config)
  k_enc, k_dec = jax.random.split(key)
  side = 2 * config.receptive_radius + 1
  return {"encoder": encoder.init(k_enc, jnp.zeros((1, side, side, in_channels)))["params"],
          "decoder": decoder.init(k_dec, jnp.zeros((1, latent_dim(config))))["params"]}


def embed_padded(params: Params, x: jax.Array, config: CutsConfig) -> jax.Array:
  """Embeddings `[..., H, W, L]` of an input `[..., H + 2R, W + 2R, C]` already padded by R."""
  encoder, _ = _modules(x.shape[-1], config)
  return encoder.apply({"params": params["encoder"]}, x)


def embed_image(params: Params, image: jax.Array, config: CutsConfig) -> jax.Array:
  """Embeddings `[H, W, L]` of ONE normalised image `[H, W, C]` (edge-padded by R here)."""
  r = config.receptive_radius
  return embed_padded(params, jnp.pad(image, ((r, r), (r, r), (0, 0)), mode="edge"), config)


def reconstruct(params: Params, z: jax.Array, in_channels: int,
                config: CutsConfig) -> jax.Array:
  """The patches `[..., P, P, C]` reconstructed from embeddings `z` `[..., L]`."""
  _, decoder = _modules(in_channels, config)
  flat = decoder.apply({"params": params["decoder"]}, z)
  p = config.patch_size
  return flat.reshape(z.shape[:-1] + (p, p, in_channels))
