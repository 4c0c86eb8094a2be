"""The student's augmentations, in JAX, for ONE example (the train step vmaps them).

Geometric (`geometric`): one coordinate map moves the image, the target and the weight
together (they are stacked as channels and sampled once, so they cannot come apart). For an
output pixel (i, j) of the `[S, S]` grid, u = (i + 1/2) / S and v = (j + 1/2) / S in (0, 1):

    (u, v) <- (1 - u, v) with a vertical flip, (u, 1 - v) with a horizontal one
    (u, v) <- rot^k(u, v), rot(u, v) = (v, 1 - u), k ~ U{0, 1, 2, 3}   (quarter turns)
    source pixel = (o_y + s S u - 1/2, o_x + s S v - 1/2),  s ~ U(crop_scale, 1),
                                                          o_y, o_x ~ U(0, (1 - s) S)

sampled bilinearly (`bilinear`: coordinates clamped to the image, so edge pixels repeat).
With no crop (s = 1) a flip or a turn is an exact permutation of the pixels.

Photometric (`photometric`, the image only, in [0, 1] units), in this order:

    hue:        x <- R_theta x,  R_theta the rotation by theta ~ U(-2 pi hue, 2 pi hue) about
                the grey axis (1, 1, 1) / sqrt 3 (RGB only; a hue shift that keeps grey grey)
    contrast:   x <- m + c (x - m),  m the image's mean over pixels and channels,
                c ~ U(1 - contrast, 1 + contrast)
    brightness: x <- x + b,  b ~ U(-brightness, brightness);  then clipped to [0, 1]

`augment` draws the example's 9 uniform numbers at once (`draws`), 6 geometric and 3
photometric, whatever the switches: switching one augmentation off never changes another's.
"""

from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp

from sgscn_jax.distil.config import DistilConfig


GEOMETRIC_DRAWS = 6     # flip rows, flip columns, turns, crop scale, crop offset (2)
PHOTOMETRIC_DRAWS = 3   # hue, contrast, brightness


def draws(key: jax.Array) -> jax.Array:
  """The example's 9 uniform numbers in [0, 1): 6 geometric, then 3 photometric (one
  draw for all: each `jax.random` call costs compile time; every number is drawn whatever
  the switches, so switching one augmentation off never changes another's)."""
  return jax.random.uniform(key, (GEOMETRIC_DRAWS + PHOTOMETRIC_DRAWS,))


def source_coordinates(d: jax.Array, side: int, config: DistilConfig) -> jax.Array:
  """The source pixel coordinates `[2, S, S]` (row, column) of each output pixel of the
  geometric transform drawn as `d` `[6]` (module docstring); the identity with every
  switch off. A quarter-turn count k = 2 k_1 + k_0 is applied as rot^2 (both coordinates
  mirrored) if k_1, then rot if k_0 (the turns commute)."""
  on = config.augment
  flip = (d[:2] < 0.5) & (on and config.flips)
  turns = jnp.where(on and config.rotations, jnp.floor(4 * d[2]).astype(jnp.int32), 0)
  low = config.crop_scale if on else 1.0
  scale = low + (1.0 - low) * d[3]
  offset = d[4:6] * (1.0 - scale) * side
  centres = (jnp.arange(side, dtype=jnp.float32) + 0.5) / side
  u, v = jnp.meshgrid(centres, centres, indexing="ij")
  u = jnp.where(flip[0], 1.0 - u, u)
  v = jnp.where(flip[1], 1.0 - v, v)
  half = turns >= 2
  u, v = jnp.where(half, 1.0 - u, u), jnp.where(half, 1.0 - v, v)
  quarter = turns % 2 == 1
  u, v = jnp.where(quarter, v, u), jnp.where(quarter, 1.0 - u, v)
  return jnp.stack([offset[0] + scale * side * u - 0.5, offset[1] + scale * side * v - 0.5])


def bilinear(stack: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """`stack` `[H, W, K]` sampled at (rows, cols) `[S, S]` (pixel units, clamped to the
  image): with r0 = floor(r), a = r - r0 (and c0, b for the columns),

      out = (1-a)(1-b) x[r0, c0] + (1-a) b x[r0, c0+1] + a (1-b) x[r0+1, c0] + a b x[r0+1, c0+1]

  (every channel at once: four gathers; at integer coordinates the pixel itself, exactly)."""
  h, w = stack.shape[:2]
  rows, cols = jnp.clip(rows, 0, h - 1), jnp.clip(cols, 0, w - 1)
  r0, c0 = jnp.floor(rows), jnp.floor(cols)
  a, b = (rows - r0)[..., None], (cols - c0)[..., None]
  r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)
  r1, c1 = jnp.minimum(r0 + 1, h - 1), jnp.minimum(c0 + 1, w - 1)
  return ((1 - a) * ((1 - b) * stack[r0, c0] + b * stack[r0, c1])
          + a * ((1 - b) * stack[r1, c0] + b * stack[r1, c1]))


def geometric(d: jax.Array, stack: jax.Array, config: DistilConfig) -> jax.Array:
  """`stack` `[S, S, K]` (image channels, target, weight: any K) moved by the transform
  drawn as `d` `[6]`; every channel with the same coordinates."""
  side = stack.shape[0]
  if stack.shape[1] != side:
    raise ValueError(f"distil: augmentations take square inputs, got {stack.shape}")
  coords = source_coordinates(d, side, config)
  return bilinear(stack, coords[0], coords[1])


def hue_rotation(theta: jax.Array) -> jax.Array:
  """`[3, 3]` rotation by `theta` radians about the grey axis k = (1, 1, 1) / sqrt 3:
  R = cos(theta) I + sin(theta) [k]_x + (1 - cos(theta)) k k^T (Rodrigues)."""
  k = jnp.full((3,), 1.0 / jnp.sqrt(3.0))
  cross = jnp.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
  return (jnp.cos(theta) * jnp.eye(3) + jnp.sin(theta) * cross
          + (1.0 - jnp.cos(theta)) * jnp.outer(k, k))


def photometric(d: jax.Array, image: jax.Array, config: DistilConfig) -> jax.Array:
  """`image` `[S, S, C]` in [0, 1] with the hue, contrast and brightness drawn as `d` `[3]`
  (module docstring), clipped to [0, 1]; unchanged with `augment` off."""
  e = 2.0 * d - 1.0   # in [-1, 1)
  theta = 2 * jnp.pi * config.hue * e[0]
  c = 1.0 + config.contrast * e[1]
  b = config.brightness * e[2]
  if not config.augment:
    return image
  if image.shape[-1] == 3 and config.hue > 0:
    image = image @ hue_rotation(theta).T
  mean = jnp.mean(image)
  return jnp.clip(mean + c * (image - mean) + b, 0.0, 1.0)


def augment(key: jax.Array, image: jax.Array, target: jax.Array, weight: jax.Array,
            config: DistilConfig) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """One example: image `[S, S, C]` in [0, 1], target and weight `[S, S]` in [0, 1], moved
  by the same geometric transform; then the image's photometric jitter."""
  d = draws(key)
  c = image.shape[-1]
  moved = geometric(d[:GEOMETRIC_DRAWS],
                    jnp.concatenate([image, target[..., None], weight[..., None]], -1), config)
  return (photometric(d[GEOMETRIC_DRAWS:], moved[..., :c], config), moved[..., c],
          moved[..., c + 1])
