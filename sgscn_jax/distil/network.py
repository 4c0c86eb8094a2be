"""The student: a small U-Net (the package's only Flax import; the rest sees pytrees and
functions).

With width c and depth D, level l = 0..D has c 2^l channels:

    e_0 = block_0(x)                                 [S, S, c]
    e_l = block_l(avg_pool_2x2(e_{l-1}))             [S / 2^l, S / 2^l, c 2^l],  l = 1..D
    d_D = e_D
    d_l = block'_l(concat(e_l, conv_3x3(up_2x(d_{l+1}))))   l = D-1..0
    logit = conv_1x1(d_0)                            [S, S]

`block` = (conv_3x3 -> GroupNorm -> ReLU) twice, the convs without bias (GroupNorm removes
it: its gradient is 0 but for rounding, which Adam would amplify into steps of the learning
rate); `up_2x` is nearest-neighbour upsampling.
GroupNorm (groups of at most 8, `gcd(8, channels)` groups) normalises each image over its
own pixels, so training and inference compute the same function and no running
statistics are threaded (STYLE.md 3). Width 16, depth 4: about 2.2 M parameters.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Params = Dict[str, Any]
# The std of a standard normal truncated to [-2, 2] (Flax's truncated_normal correction).
TRUNCATED_STD = 0.87962566103423978


class _Block(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, x):
    for _ in range(2):
      x = nn.Conv(self.channels, (3, 3), padding="SAME", use_bias=False)(x)
      x = nn.relu(nn.GroupNorm(num_groups=math.gcd(8, self.channels), epsilon=1e-5)(x))
    return x


class _UNet(nn.Module):
  width: int
  depth: int

  @nn.compact
  def __call__(self, x):   # [B, S, S, C] -> [B, S, S]
    skips = []
    for level in range(self.depth + 1):
      if level:
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
      x = _Block(self.width * 2 ** level)(x)
      skips.append(x)
    for level in reversed(range(self.depth)):
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      x = nn.Conv(self.width * 2 ** level, (3, 3), padding="SAME")(x)
      x = _Block(self.width * 2 ** level)(jnp.concatenate([skips[level], x], -1))
    return nn.Conv(1, (1, 1))(x)[..., 0]


def init(key: jax.Array, in_channels: int, width: int, depth: int) -> Params:
  """The U-Net's parameters, a nested dict of float32 NumPy arrays, with Flax's default
  initialisers drawn by NumPy from `key`'s bits: every conv kernel `[3, 3, C_in, C_out]`
  LeCun normal (a normal of std sqrt(1 / fan_in), fan_in = 3 * 3 * C_in, truncated at 2
  std and rescaled to that std), biases 0, GroupNorm scales 1. (Drawn on the host: `init`
  under jit compiles a threefry hash per parameter, 35 s for the default U-Net on 2 cores;
  the shapes come from `jax.eval_shape`, which compiles nothing.)"""
  side = 2 ** depth
  shapes = jax.eval_shape(_UNet(width, depth).init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, side, side, in_channels), jnp.float32))
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())

  def draw(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      z = rng.standard_normal(leaf.shape)
      while np.any(np.abs(z) > 2):
        bad = np.abs(z) > 2
        z[bad] = rng.standard_normal(int(bad.sum()))
      return (z * np.sqrt(1.0 / fan_in) / TRUNCATED_STD).astype(np.float32)
    return (np.ones if name == "scale" else np.zeros)(leaf.shape, np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes["params"])


def apply(params: Params, x: jax.Array, width: int, depth: int) -> jax.Array:
  """Logits `[B, S, S]` of a batch of normalised images `[B, S, S, C]` (S a multiple of
  2^depth)."""
  return _UNet(width, depth).apply({"params": params}, x)


def parameter_count(params: Params) -> int:
  return int(sum(p.size for p in jax.tree.leaves(params)))
