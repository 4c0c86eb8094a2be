"""The foreground of a volume (the head, or the body, and not the air around it): where
every method clusters and where the volume is scored, the way `valid` is DRIVE's field of
view and the ultrasound scan region.

    mask = foreground_mask(volume)               # volume [D, H, W, C] (or [H, W, C])
    mask = foreground_mask(volume, spacing=s)    # smoothing in physical units

Rule (host side, NumPy and scipy.ndimage, no ground truth):

1. grey = the mean over channels, smoothed by a Gaussian of `sigma` voxels along the finest
   axis (and `sigma * s_min / s_a` along axis a of a coarser spacing), so that noise in the
   air does not survive the threshold;
2. Otsu's threshold of grey (the two classes of largest between-class variance over a
   256-bin histogram): the foreground candidates are the voxels at or above it (air is the
   darkest thing in an MRI or CT volume);
3. the connected components of the candidates (face connectivity) of at least `min_share`
   (5 %) of the largest one's size: a bright speck or artefact in the air is dropped, while
   a head whose bright scalp is cut off from the brain by dark skull and CSF (T1) keeps both;
4. its holes filled in 3D, then slice by slice along every axis (a ventricle, the dark
   CSF around the brain or an air-filled sinus enclosed in a slice is part of the head).

A volume with no contrast (Otsu undefined) or a candidate set that is empty gives a mask of
every voxel. A data set that ships its own mask (MNI152: nilearn's brain mask,
`experiments.mni152`) uses that instead (`data.datasets.volume`: `foreground="<folder>"`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

FOREGROUND_SIGMA = 0.5   # voxels along the finest axis (rule 1)
MIN_SHARE = 0.05         # of the largest component's size (rule 3)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> Optional[float]:
  """Otsu's threshold of `values` (any shape): the bin edge that maximises the between-class
  variance w0 w1 (m0 - m1)^2 of a `bins`-bin histogram; None when all values are equal."""
  values = np.asarray(values, np.float64).ravel()
  lo, hi = float(values.min()), float(values.max())
  if not hi > lo:
    return None
  counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
  centres = 0.5 * (edges[:-1] + edges[1:])
  w0 = np.cumsum(counts)[:-1].astype(np.float64)
  w1 = counts.sum() - w0
  s0 = np.cumsum(counts * centres)[:-1]
  m0 = s0 / np.maximum(w0, 1)
  m1 = (np.sum(counts * centres) - s0) / np.maximum(w1, 1)
  between = w0 * w1 * (m0 - m1) ** 2
  return float(edges[1:-1][int(np.argmax(between))])


def large_components(mask: np.ndarray, min_share: float = MIN_SHARE) -> np.ndarray:
  """The face-connected components of `mask` (bool, any rank) of at least `min_share` of
  the largest one's size (`min_share` 1: the largest alone); all False stays."""
  labelled, n = ndimage.label(mask)
  if n == 0:
    return np.zeros(mask.shape, bool)
  sizes = np.bincount(labelled.ravel())
  sizes[0] = 0
  keep = sizes >= min_share * sizes.max()
  keep[0] = False
  return keep[labelled]


def fill_holes(mask: np.ndarray) -> np.ndarray:
  """Holes of `mask` filled in its own rank, then in every 2D slice along every axis (3D)."""
  out = ndimage.binary_fill_holes(mask)
  if out.ndim == 3:
    for axis in range(3):
      moved = np.moveaxis(out, axis, 0)
      moved[:] = np.stack([ndimage.binary_fill_holes(s) for s in moved])
  return out


def foreground_mask(volume: np.ndarray, spacing: Optional[Sequence[float]] = None,
                    sigma: float = FOREGROUND_SIGMA,
                    min_share: float = MIN_SHARE) -> np.ndarray:
  """The foreground `[*spatial]` bool of `volume` `[*spatial, C]` (module docstring).

  Args:
    volume: `[D, H, W, C]` or `[H, W, C]` float (any intensity range).
    spacing: voxel size per spatial axis (rule 1's smoothing), or None (isotropic).
    sigma: the smoothing's standard deviation in voxels of the finest axis (0: none).
    min_share: rule 3's least component size, a share of the largest component's.
  """
  volume = np.asarray(volume, np.float32)
  if volume.ndim < 3:
    raise ValueError(f"volume must be [*spatial, C] with 2 or 3 spatial axes, got {volume.shape}")
  grey = volume.mean(-1)
  if sigma > 0:
    s = np.ones(grey.ndim) if spacing is None else np.asarray(spacing, np.float64)
    grey = ndimage.gaussian_filter(grey, sigma * s.min() / s, mode="nearest")
  threshold = otsu_threshold(grey)
  if threshold is None:
    return np.ones(grey.shape, bool)
  candidates = large_components(grey >= threshold, min_share)
  if not candidates.any():
    return np.ones(grey.shape, bool)
  return fill_holes(candidates)


def masked_standardise(volume: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
  """`(volume - mean) / std` per channel with the statistics of the voxels in `mask` (all
  voxels when None), and 0 outside the mask: what a method sees when it clusters inside."""
  volume = np.asarray(volume, np.float32)
  if mask is None:
    mask = np.ones(volume.shape[:-1], bool)
  inside = volume[mask]
  mean = inside.mean(0) if inside.size else np.zeros(volume.shape[-1], np.float32)
  std = inside.std(0) if inside.size else np.ones(volume.shape[-1], np.float32)
  out = (volume - mean) / np.where(std > 0, std, 1.0)
  return np.where(mask[..., None], out, 0.0).astype(np.float32)
