"""Bilinear sampling with JAX gathers, and random affine warps of one 2D image.

Used by S3-Net's affine transformation-consistency loss L_AT (`consistency`);
`sample_bilinear` is also the reference S3-Net's deformable convolution is tested against
(`s3net.deformable_conv` packs the four corners into one gather of its own).
Everything here is 2D only: the arrays are one image `[H, W, C]` (no batch axis) and
positions are in pixels, (row, col).

Sampling convention (inverse mapping, as `scipy.ndimage.affine_transform`): the warped
image at output pixel y is the input at the position

    x(y) = c + M (y - c) + t,       c = ((H - 1) / 2, (W - 1) / 2) the image centre,

read by bilinear interpolation, so `Affine(M, t)` *is* the map from output to input
positions. Outside the input (x not in [0, H-1] x [0, W-1]) the warped image is zero and
`valid_mask` is false. The inverse warp is `Affine(M^-1, -M^-1 t)` (`inverse`):
warping by A and then by inverse(A) brings every pixel that stayed valid back to its own
position (exactly when A maps the grid onto itself: 90-degree rotations, flips, integer
shifts; up to the interpolation otherwise).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Affine(NamedTuple):
  """The output-to-input map `x = c + matrix (y - c) + shift` (pixels, (row, col))."""
  matrix: jax.Array  # [2, 2] float32
  shift: jax.Array   # [2] float32, pixels


class AffineRange(NamedTuple):
  """The distribution `random_affine` draws from (L_AT's transforms).

  matrix = scale * R(angle) * F, with angle ~ U(-max_angle, max_angle) (radians),
  log(scale) ~ U(-log(max_scale), log(max_scale)), F = diag(1, -1) (a left-right flip)
  with probability `flip_probability`, else the identity; shift ~ U(-max_shift,
  max_shift) x (H, W) per axis. The map is drawn as the output-to-input map directly
  (the family is closed under inversion, so this is the same distribution of transforms).
  """
  max_angle: float = math.pi / 4
  max_scale: float = 1.25
  flip_probability: float = 0.5
  max_shift: float = 0.1


def identity() -> Affine:
  return Affine(jnp.eye(2, dtype=jnp.float32), jnp.zeros((2,), jnp.float32))


def inverse(affine: Affine) -> Affine:
  """The map that undoes `affine`: `Affine(M^-1, -M^-1 t)`."""
  m_inv = jnp.linalg.inv(affine.matrix)
  return Affine(m_inv, -(m_inv @ affine.shift))


def random_affine(key: jax.Array, spatial_shape, spec: AffineRange = AffineRange()) -> Affine:
  """One affine map drawn from `spec` (see `AffineRange`) for an image of `spatial_shape`."""
  k_angle, k_scale, k_flip, k_shift = jax.random.split(key, 4)
  angle = jax.random.uniform(k_angle, (), jnp.float32, -spec.max_angle, spec.max_angle)
  log_s = math.log(spec.max_scale)
  scale = jnp.exp(jax.random.uniform(k_scale, (), jnp.float32, -log_s, log_s))
  flip = jnp.where(jax.random.bernoulli(k_flip, spec.flip_probability), -1.0, 1.0)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  rotation = jnp.stack([jnp.stack([cos, -sin]), jnp.stack([sin, cos])])
  matrix = scale * rotation * jnp.stack([jnp.ones(()), flip])[None, :]  # R @ diag(1, flip)
  size = jnp.asarray(spatial_shape, jnp.float32)
  shift = jax.random.uniform(k_shift, (2,), jnp.float32, -spec.max_shift, spec.max_shift) * size
  return Affine(matrix.astype(jnp.float32), shift)


def source_positions(affine: Affine, spatial_shape) -> jax.Array:
  """x(y) for every output pixel y: `[H, W, 2]` float32 (row, col) in input pixels."""
  h, w = spatial_shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                            jnp.arange(w, dtype=jnp.float32), indexing="ij")
  centre = jnp.asarray([(h - 1) / 2.0, (w - 1) / 2.0], jnp.float32)
  y = jnp.stack([rows, cols], axis=-1) - centre.reshape(1, 1, 2)          # [H, W, 2]
  x = jnp.einsum("ij,hwj->hwi", affine.matrix, y)
  return x + (centre + affine.shift).reshape(1, 1, 2)


def sample_bilinear(image: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """`image` `[H, W, C]` read at real positions `(rows, cols)` (each `[*out]`): `[*out, C]`.

  v = sum over the 4 neighbours (i, j) of floor(x) of (1 - |row - i|)(1 - |col - j|)
  image[i, j], a neighbour outside the image counting as zero (zero padding). Written as
  four flat gathers (`jnp.take`); its gradient in the image is a scatter-add, in the
  positions the usual piecewise-linear one.
  """
  h, w, c = image.shape
  flat = image.reshape(h * w, c)
  r0, c0 = jnp.floor(rows), jnp.floor(cols)
  fr, fc = rows - r0, cols - c0
  r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)
  out = jnp.zeros(rows.shape + (c,), image.dtype)
  for dr, wr in ((0, 1.0 - fr), (1, fr)):
    for dc, wc in ((0, 1.0 - fc), (1, fc)):
      i, j = r0 + dr, c0 + dc
      inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
      index = jnp.clip(i, 0, h - 1) * w + jnp.clip(j, 0, w - 1)
      weight = jnp.where(inside, wr * wc, 0.0)
      out = out + jnp.take(flat, index, axis=0) * weight[..., None]
  return out


def warp(image: jax.Array, affine: Affine) -> jax.Array:
  """`image` `[H, W, C]` warped by `affine` (see the module docstring): `[H, W, C]`."""
  if image.ndim != 3:
    raise ValueError(f"warp is 2D only: expected [H, W, C], got shape {image.shape}")
  x = source_positions(affine, image.shape[:2])
  return sample_bilinear(image, x[..., 0], x[..., 1])


def valid_mask(affine: Affine, spatial_shape, tolerance: float = 1e-4) -> jax.Array:
  """`[H, W]` bool: output pixels whose source position lies inside the input
  ([0, H-1] x [0, W-1], up to `tolerance` pixels), i.e. not brought in from outside."""
  h, w = spatial_shape
  x = source_positions(affine, spatial_shape)
  return ((x[..., 0] >= -tolerance) & (x[..., 0] <= h - 1 + tolerance)
          & (x[..., 1] >= -tolerance) & (x[..., 1] <= w - 1 + tolerance))
