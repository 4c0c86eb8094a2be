"""Patches of an image or volume: their geometry from the voxel spacing, their centres, their
values.

Geometry. A patch is the receptive field of the patch CNN (`network`): L = (patch_size - 1) / 2
valid convolutions, each with a kernel of 3 or 1 taps per axis. Axis a has 3 taps in the first
n_a layers and 1 in the rest, with

    n_a = round(L * s_min / s_a)        (s_a the voxel size along a, s_min the finest),

so a patch spans about the same physical length along every axis: extent e_a = 2 n_a + 1
voxels, halo n_a on each side of its centre. Isotropic voxels give a cube of `patch_size`; a
volume with 3 mm slices and 1 mm pixels and patch_size 7 gives 3x7x7.

Centres. Half of `n_patches` (`grid_share`) lie on a strided grid covering the whole image
(stride t = ceil((prod_a N_a / n_grid)^(1/r)) voxels on every axis, the first centre at t // 2),
the rest are drawn uniformly from the voxels not on the grid, without repetition, by a NumPy
generator seeded from the method's key: the same key gives the same patches.

Values. The image is padded by its edge values (`pad`, halo on every side), so a patch centred
on a border voxel exists, and patch j of centre c is `padded[c_a : c_a + e_a]` on every axis
(`extract`). Dense labelling pads the same way, so the patch the CNN was trained on and the one
a voxel is labelled by are the same function of the image.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def layer_taps(patch_size: int, spacing: Optional[Sequence[float]], rank: int) -> tuple:
  """Per layer, the kernel's taps per axis: `((k_0, .., k_{r-1}), ...)` of L layers, k in {1, 3}.

  Args:
    patch_size: odd, >= 3: the patch's extent along the finest axis.
    spacing: voxel size per axis (any unit), or None (isotropic).
    rank: spatial rank r (2 or 3).
  """
  if patch_size < 3 or patch_size % 2 == 0:
    raise ValueError(f"patch_size must be odd and >= 3, got {patch_size}")
  layers = (patch_size - 1) // 2
  if spacing is None:
    spacing = (1.0,) * rank
  spacing = [float(s) for s in spacing]
  if len(spacing) != rank or min(spacing) <= 0:
    raise ValueError(f"spacing must be {rank} positive sizes, got {spacing}")
  finest = min(spacing)
  n = [min(layers, int(round(layers * finest / s))) for s in spacing]
  return tuple(tuple(3 if layer < n_a else 1 for n_a in n) for layer in range(layers))


def halo(taps: Sequence[Sequence[int]]) -> tuple:
  """Voxels on each side of a patch's centre, per axis: the number of 3-tap layers."""
  return tuple(sum(layer[a] == 3 for layer in taps) for a in range(len(taps[0])))


def extent(taps: Sequence[Sequence[int]]) -> tuple:
  """The patch's size in voxels per axis: 2 halo + 1."""
  return tuple(2 * h + 1 for h in halo(taps))


def pad(image: np.ndarray, halo_: Sequence[int]) -> np.ndarray:
  """`image` `[*spatial, C]` padded by `halo_` voxels of its edge values on both sides of each
  spatial axis."""
  widths = [(h, h) for h in halo_] + [(0, 0)]
  return np.pad(np.asarray(image, np.float32), widths, mode="edge")


def sample_centres(rng: np.random.Generator, spatial: Sequence[int], n_patches: int,
                   grid_share: float = 0.5, mask: Optional[np.ndarray] = None) -> np.ndarray:
  """Patch centres `[N, r]` int64 (grid first, then random; module docstring).

  N = min(n_patches, voxels); fewer grid centres than asked when the grid is coarse. With a
  `mask` `[*spatial]` bool (the foreground), every centre lies in it: the grid's stride is
  computed from the mask's voxel count and its points outside the mask are dropped, and the
  random centres are drawn from the mask's other voxels.
  """
  spatial = tuple(int(n) for n in spatial)
  total = math.prod(spatial)
  inside = (np.ones(total, bool) if mask is None
            else np.asarray(mask, bool).reshape(-1))
  count = int(inside.sum())
  n_patches = min(int(n_patches), count)
  n_grid = int(round(n_patches * grid_share))
  flat = np.zeros(0, np.int64)
  if n_grid > 0:
    stride = max(1, math.ceil((count / n_grid) ** (1.0 / len(spatial))))
    axes = [np.arange(min(stride // 2, n - 1), n, stride) for n in spatial]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(spatial))
    flat = np.ravel_multi_index(tuple(grid.T), spatial)
    flat = flat[inside[flat]][:n_patches]
  rest = n_patches - flat.size
  if rest > 0:
    free = np.setdiff1d(np.flatnonzero(inside).astype(np.int64), flat, assume_unique=True)
    flat = np.concatenate([flat, rng.choice(free, size=rest, replace=False)])
  return np.stack(np.unravel_index(flat, spatial), -1).astype(np.int64)


def extract(padded: np.ndarray, centres: np.ndarray, extent_: Sequence[int]) -> np.ndarray:
  """The patches `[N, *extent_, C]` centred on `centres` `[N, r]` of the image that `padded`
  (`pad` with halo (extent_ - 1) / 2) was made from."""
  rank = len(extent_)
  offsets = np.stack(np.meshgrid(*[np.arange(e) for e in extent_], indexing="ij"), -1)
  index = centres.reshape((-1,) + (1,) * rank + (rank,)) + offsets[None]
  return padded[tuple(index[..., a] for a in range(rank))]


def centre_window(extent_: Sequence[int], sigma: float) -> np.ndarray:
  """A Gaussian weight `[*extent_]` on the patch, 1 at its centre: exp(-|o|^2 / (2 sigma^2))
  with o the offset in voxels (sigma <= 0: all ones). It weights the raw patches of the first
  clustering (`method`), so that a patch's centre counts more than its rim."""
  grids = np.meshgrid(*[np.arange(e) - (e - 1) / 2 for e in extent_], indexing="ij")
  if sigma <= 0:
    return np.ones(tuple(extent_), np.float32)
  r2 = sum(g.astype(np.float64) ** 2 for g in grids)
  return np.exp(-r2 / (2.0 * sigma ** 2)).astype(np.float32)
