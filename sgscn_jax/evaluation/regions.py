"""Binary region operations on label maps and masks (2D and 3D, host side): the border
frame, resampling, morphology and the choice of connected components. scipy.ndimage and
scikit-image do the work; these functions only fix the conventions (edge padding, face
connectivity, border rings) shared by the object step."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from skimage import measure, morphology, transform



def fill_frame(labels: np.ndarray, frame: int = 1) -> np.ndarray:
  """Labels `[*spatial]` whose pixels within `frame` of a face take the nearest interior label.

  The interior is a box, so the nearest interior pixel of `x` is `clip(x_a, frame,
  n_a - 1 - frame)` on every axis `a` (in any p-norm); interior pixels are unchanged.
  """
  labels = np.asarray(labels)
  if frame <= 0:
    return labels
  index = []
  for n in labels.shape:
    lo = min(frame, (n - 1) // 2)
    index.append(np.clip(np.arange(n), lo, max(n - 1 - frame, lo)))
  return labels[np.ix_(*index)]


def border_ring(shape: Sequence[int], depth: int = 0) -> np.ndarray:
  """`[*shape]` bool: the pixels at exactly `depth` from the nearest face (clipped)."""
  dist = np.full(tuple(shape), max(shape))
  for a, n in enumerate(shape):
    i = np.arange(n).reshape((-1,) + (1,) * (len(shape) - a - 1))
    dist = np.minimum(dist, np.minimum(i, n - 1 - i))
  return dist == min(depth, int(dist.max()))


def analysis_shape(shape: Sequence[int], size: int | None) -> tuple[int, ...]:
  """`shape` scaled so its long side is `size` (sides `round(n * size / long)`, >= 1)."""
  if not size:
    return tuple(shape)
  return tuple(max(1, int(np.floor(n * size / max(shape) + 0.5))) for n in shape)


def resize_nearest(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Nearest-neighbour resampling of the leading axes: `out[i] = in[floor((i + .5) n / m)]`."""
  if array.shape[:len(shape)] == tuple(shape):
    return array
  index = [np.minimum(((np.arange(m) + 0.5) * n / m).astype(int), n - 1)
           for n, m in zip(array.shape, shape)]
  return array[np.ix_(*index)]


def resize_image(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  if image.shape[:-1] == shape:
    return image
  shrink = any(m < n for n, m in zip(image.shape, shape))
  return transform.resize(image, shape + image.shape[-1:], order=1, anti_aliasing=shrink)


def as_channels(image: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
  image = np.asarray(image, np.float64)
  image = image[..., None] if image.shape == spatial else image
  if image.shape[:-1] != spatial:
    raise ValueError(f"image {image.shape} does not match labels {spatial}")
  return image


def ball(radius: int, ndim: int) -> np.ndarray:
  grid = np.indices((2 * radius + 1,) * ndim) - radius
  return (grid ** 2).sum(0) <= radius ** 2



def fill_holes(mask: np.ndarray) -> np.ndarray:
  """`mask` plus the background components that do not reach the border."""
  return ndimage.binary_fill_holes(mask)


def open_mask(mask: np.ndarray, radius: int) -> np.ndarray:
  """Binary opening with a ball of `radius`; the image is edge-padded so that an object
  is not eroded where it meets the border. radius 0 = unchanged."""
  if radius <= 0:
    return mask
  padded = np.pad(mask, radius + 1, mode="edge")
  opened = ndimage.binary_opening(padded, ball(radius, mask.ndim))
  return opened[(slice(radius + 1, -radius - 1),) * mask.ndim]


def close_mask(mask: np.ndarray, radius: int) -> np.ndarray:
  """Binary closing with a ball of `radius` (edge-padded like `open_mask`); 0 = unchanged."""
  if radius <= 0:
    return mask
  padded = np.pad(mask, radius + 1, mode="edge")
  closed = ndimage.binary_closing(padded, ball(radius, mask.ndim))
  return closed[(slice(radius + 1, -radius - 1),) * mask.ndim]


def components(mask: np.ndarray, full: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(component map, pixel counts `[n + 1]`, index 0 = background); face connectivity
  unless `full`."""
  structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim if full else 1)
  comp, n = ndimage.label(mask, structure)
  return comp, np.bincount(comp.ravel(), minlength=n + 1)


def connected_pieces(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Each region of `dense` (ids 0..K-1, -1 ignored) split into its connected pieces (face
  connectivity): (pieces `[*spatial]` ids 0..n-1 in raster order of first appearance, -1
  kept; parent `[n]`, the `dense` id of each piece)."""
  pieces = measure.label(np.asarray(dense) + 1, background=0, connectivity=1) - 1
  parent = np.zeros(int(pieces.max()) + 1, np.int64)
  inside = pieces >= 0
  parent[pieces[inside]] = np.asarray(dense)[inside]
  return pieces.astype(np.int64), parent


def central_component(mask: np.ndarray, centre_weight: float = 4.0,
                      border_penalty: float = 0.3) -> np.ndarray:
  """The component (face connectivity) of best `area * exp(-centre_weight * d)`, d = centroid
  distance from the centre / half-diagonal; x `border_penalty` if it touches the border."""
  comp, area = components(mask)
  if len(area) == 1:
    return np.zeros_like(mask)
  centre = (np.asarray(mask.shape) - 1) / 2
  coords = np.stack([np.bincount(comp.ravel(), g.ravel(), minlength=len(area))
                     for g in np.indices(mask.shape)], -1) / np.maximum(area, 1)[:, None]
  d = np.linalg.norm(coords - centre, axis=-1) / max(np.linalg.norm(centre), 1e-12)
  score = area / mask.size * np.exp(-centre_weight * d)
  score[np.unique(comp[border_ring(mask.shape)])] *= border_penalty
  score[0] = -1
  return comp == int(score.argmax())


def grow_into(mask: np.ndarray, allowed: np.ndarray, band: int, opening_radius: int) -> np.ndarray:
  """`mask` grown, pixel by pixel, into the `allowed` pixels within `band` of it.

      near  = dilation(mask, ball(band))
      grown = opening(mask | (near & allowed), ball(opening_radius)) | mask
      out   = fill_holes(the components (face connectivity) of grown that meet mask)

  The opening drops thin threads (hairs) and specks of `allowed` that touch the mask; the
  mask itself is never eroded. band 0 = `mask` unchanged. Rank-generic."""
  mask = np.asarray(mask, bool)
  if band <= 0 or not mask.any():
    return mask
  near = ndimage.binary_dilation(mask, ball(band, mask.ndim))
  grown = open_mask(mask | (near & np.asarray(allowed, bool)), opening_radius) | mask
  comp, _ = components(grown)
  return fill_holes(np.isin(comp, np.unique(comp[mask])))


def drop_border_components(mask: np.ndarray) -> np.ndarray:
  """`mask` without its components (face connectivity) that touch the image border."""
  comp, _ = components(mask)
  return mask & ~np.isin(comp, comp[border_ring(mask.shape)])


def largest_components(mask: np.ndarray, count: int, min_fraction: float = 0.0) -> np.ndarray:
  """The `count` largest components (face connectivity) of at least `min_fraction` of the image."""
  comp, area = components(mask)
  area[0] = 0
  keep = np.argsort(-area, kind="stable")[:count]
  return np.isin(comp, keep[area[keep] >= max(min_fraction * mask.size, 1)])


def drop_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
  """`mask` without components (full connectivity) of fewer than `min_size` pixels."""
  comp, area = components(mask, full=True)
  return mask & (area[comp] >= min_size)


def convex_hull(mask: np.ndarray) -> np.ndarray:
  if mask.ndim == 2:
    return morphology.convex_hull_image(mask)
  return np.stack([morphology.convex_hull_image(m) if m.any() else m for m in mask])
