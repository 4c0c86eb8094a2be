"""Random, exactly invertible image transforms g and the undoing of g on per-pixel outputs.

IIC (Ji et al., ICCV 2019) pairs every pixel of an image x with the same pixel of a
transformed copy g(x): the network's output on g(x) is brought back to x's frame by
g^-1 before pairing. Only transforms whose geometric part maps pixels to pixels are used
here, so g^-1 is exact (no resampling):

  geometric  shift s (an integer per spatial axis, |s_a| <= round(max_shift * n_a)) with
             edge replication, then an optional flip of the last spatial axis (W):
               g(x)[p] = x[clip(flip(p) + s)]
  photometric (on the colours only, after the geometric part; values clipped to [0, 1]):
               brightness x <- b x,  contrast x <- c (x - mean x) + mean x,
               saturation x <- t (x - grey x) + grey x,   b, c, t ~ U(1 - j, 1 + j)
             (grey x = the mean over channels; a no-op for one channel).

For an output z' = Phi(g(x)) `[*spatial, K]`, `undo(z', t, limits)` is z' in x's frame with a
validity mask: pixel q is valid iff q - s lies inside the image (it was not created by
edge replication). Left out: rotations, scaling and shear (they need resampling of the
output) and hue jitter.

Shapes: one image `[*spatial, C]` (2D or 3D); a `Transform` holds `[r]` shifts and scalars;
`limits` = `shift_limits(spatial, max_shift)` is static (it sizes the padding).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
from jax import lax


class Transform(NamedTuple):
  """One draw of g."""
  shift: jax.Array        # [r] int32, s
  flip: jax.Array         # [] bool, flip the last spatial axis
  brightness: jax.Array   # [] float32, b
  contrast: jax.Array     # [] float32, c
  saturation: jax.Array   # [] float32, t


def identity(rank: int) -> Transform:
  """The transform that changes nothing."""
  one = jnp.array(1.0, jnp.float32)
  return Transform(jnp.zeros((rank,), jnp.int32), jnp.array(False), one, one, one)


def shift_limits(spatial_shape: Tuple[int, ...], max_shift: float) -> Tuple[int, ...]:
  """The largest |s_a| per axis: round(max_shift * n_a) (static Python ints)."""
  return tuple(int(round(max_shift * n)) for n in spatial_shape)


def random_transform(key: jax.Array, spatial_shape: Tuple[int, ...], max_shift: float,
                     flip: bool, jitter: float) -> Transform:
  """Draws g: shifts s_a uniform in [-m_a, m_a] (`shift_limits`), a flip with
  probability 1/2 if `flip`, and b, c, t ~ U(1 - jitter, 1 + jitter)."""
  keys = jax.random.split(key, 5)
  limits = jnp.array(shift_limits(spatial_shape, max_shift), jnp.int32)
  shift = jax.random.randint(keys[0], (len(spatial_shape),), -limits, limits + 1)
  flipped = jax.random.bernoulli(keys[1]) if flip else jnp.array(False)

  def factor(k):
    return jax.random.uniform(k, (), jnp.float32, 1.0 - jitter, 1.0 + jitter)

  return Transform(shift.astype(jnp.int32), flipped, factor(keys[2]), factor(keys[3]),
                   factor(keys[4]))


def _flip_last(x: jax.Array, flipped: jax.Array) -> jax.Array:
  axis = x.ndim - 2  # the last spatial axis
  return jnp.where(flipped, jnp.flip(x, axis=axis), x)


def _window(padded: jax.Array, start: jax.Array, shape: Tuple[int, ...]) -> jax.Array:
  """`padded[start : start + shape]` over the spatial axes, all channels."""
  return lax.dynamic_slice(padded, tuple(start) + (0,), tuple(shape))


def apply_geometric(x: jax.Array, t: Transform, limits: Tuple[int, ...]) -> jax.Array:
  """g's geometric part on a per-pixel array `[*spatial, C]`: x[clip(flip(p) + s)].

  `limits` (static, >= |s| per axis, see `shift_limits`) is the edge padding:
  x_pad[p + m + s] = x[clip(p + s)], one dynamic window of the padded array.
  """
  padded = jnp.pad(x, [(m, m) for m in limits] + [(0, 0)], mode="edge")
  return _flip_last(_window(padded, jnp.array(limits) + t.shift, x.shape), t.flip)


def apply_photometric(image: jax.Array, t: Transform) -> jax.Array:
  """Brightness, contrast, saturation (module docstring), clipped to [0, 1]."""
  x = image * t.brightness
  x = (x - jnp.mean(x)) * t.contrast + jnp.mean(x)
  grey = jnp.mean(x, axis=-1, keepdims=True)
  x = (x - grey) * t.saturation + grey
  return jnp.clip(x, 0.0, 1.0)


def apply(image: jax.Array, t: Transform, limits: Tuple[int, ...]) -> jax.Array:
  """g(x) for an image `[*spatial, C]` with values in [0, 1]."""
  return apply_photometric(apply_geometric(image, t, limits), t)


def undo(z: jax.Array, t: Transform, limits: Tuple[int, ...]) -> Tuple[jax.Array, jax.Array]:
  """g^-1 on an output `z` `[*spatial, K]` of g(x): `(z in x's frame, valid [*spatial] bool)`.

  back[q] = z[flip(q - s)] where q - s is inside the image; elsewhere back is 0 and
  valid is False: zero padding by `limits`, then a window at m - s (a channel of ones
  rides along to give `valid`).
  """
  z = jnp.concatenate([_flip_last(z, t.flip), jnp.ones(z.shape[:-1] + (1,), z.dtype)], axis=-1)
  padded = jnp.pad(z, [(m, m) for m in limits] + [(0, 0)])
  back = _window(padded, jnp.array(limits) - t.shift, z.shape)
  return back[..., :-1], back[..., -1] > 0.5
