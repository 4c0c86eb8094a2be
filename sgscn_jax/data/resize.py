"""Working size, resampling, and shape buckets (host side, NumPy and Pillow).

An image is segmented at a *working shape* and its labels are brought back to the
resolution of its ground-truth mask by nearest neighbour before scoring, so resizing
never enters the scores except through what the network saw.

Bucketing: every distinct input shape costs one compilation of the jitted
segmentation. `bucket_shape` rounds each side of the working shape to the nearest
multiple of `multiple` (16 by default, never below `multiple`), and every image of a
bucket is resized to exactly that shape. The aspect ratio changes by at most
`multiple / 2` pixels per side. For PH2 (572-576 x 763-768 pixels) both `size=None`
(native; bucket 576x768) and `size=256` (working 191-193 x 256; bucket 192x256) give a
single bucket.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

Shape = tuple[int, int]
_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX}


def _round_half_up(x: float) -> int:
  return int(np.floor(x + 0.5))


def working_shape(hw: Sequence[int], size: int | Sequence[int] | None) -> Shape:
  """The `(h, w)` an image of shape `hw` is processed at.

  Args:
    hw: `(H, W, ...)` of the image; only the first two entries are used.
    size: None keeps `(H, W)`; an int `s` scales the long side to `s` and the short
      side to `round(short * s / long)` (half up, at least 1), keeping the aspect ratio;
      a pair `(h, w)` is used as it is.
  """
  h, w = int(hw[0]), int(hw[1])
  if h < 1 or w < 1:
    raise ValueError(f"image shape must be positive, got {tuple(hw)}")
  if size is None:
    return h, w
  if isinstance(size, (int, np.integer)):
    if size < 1:
      raise ValueError(f"size must be >= 1, got {size}")
    long_side = max(h, w)
    short = max(1, _round_half_up(min(h, w) * int(size) / long_side))
    return (int(size), short) if h >= w else (short, int(size))
  size = tuple(int(s) for s in size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"size must be None, an int or a positive (h, w), got {size}")
  return size


def bucket_shape(hw: Sequence[int], multiple: int = 16) -> Shape:
  """Rounds each side of `hw` to the nearest multiple of `multiple` (at least `multiple`).

  `bucket = multiple * max(1, round_half_up(side / multiple))`.
  """
  if multiple < 1:
    raise ValueError(f"multiple must be >= 1, got {multiple}")
  return tuple(multiple * max(1, _round_half_up(int(s) / multiple)) for s in hw[:2])


def resize_image(image: np.ndarray, shape: Sequence[int], method: str = "bilinear") -> np.ndarray:
  """Resamples a float image `[H, W, C]` to `[h, w, C]`, antialiased.

  Pillow's filters widen with the scale factor when shrinking, so "bilinear" is a
  triangle filter whose support covers every source pixel (antialiased), and "area" is
  the box filter (the mean over each target pixel's footprint). Both have non-negative
  weights, so values stay inside the input's range. Each channel is resampled in float32.

  Args:
    image: `[H, W, C]` float array.
    shape: `(h, w)` target.
    method: "bilinear" (default) or "area".

  Returns:
    `[h, w, C]` float32; a copy of the input when the shape is unchanged.
  """
  image = np.asarray(image, np.float32)
  if image.ndim != 3:
    raise ValueError(f"image must be [H, W, C], got shape {image.shape}")
  if method not in _FILTERS:
    raise ValueError(f"method must be one of {sorted(_FILTERS)}, got {method!r}")
  h, w = (int(s) for s in shape[:2])
  if (h, w) == image.shape[:2]:
    return image.copy()
  out = np.empty((h, w, image.shape[2]), np.float32)
  for c in range(image.shape[2]):
    plane = Image.fromarray(np.ascontiguousarray(image[..., c]))  # mode "F"
    out[..., c] = np.asarray(plane.resize((w, h), _FILTERS[method]), np.float32)
  return out


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
  """Source index of each target pixel centre: `floor((i + 0.5) * n_in / n_out)`, [n_out]."""
  return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def labels_to_shape(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Nearest-neighbour resampling of a label map `[H, W]` (any dtype) to `shape[:2]`.

  Target pixel `(i, j)` takes the label of source pixel
  `(floor((i + 0.5) H / h), floor((j + 0.5) W / w))`, i.e. pixel centres are matched.
  Labels are never blended, so no new label appears.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
  h, w = (int(s) for s in shape[:2])
  if (h, w) == labels.shape:
    return labels.copy()
  rows = nearest_indices(labels.shape[0], h)
  cols = nearest_indices(labels.shape[1], w)
  return labels[rows[:, None], cols[None, :]]


# --------------------------------------------------------------------------- volumes


def area_weights(n_in: int, n_out: int) -> np.ndarray:
  """`[n_out, n_in]` weights of exact box (area) resampling along one axis.

  Output cell i covers the input interval [i n_in / n_out, (i + 1) n_in / n_out); its value
  is the mean of the input over that interval, each input cell weighted by the length of
  its overlap. Rows sum to 1 and weights are >= 0 (values stay in range); with
  n_out = n_in it is the identity. When enlarging, each output cell copies the input cell
  it lies in (pieces of one cell).
  """
  edges = np.arange(n_out + 1, dtype=np.float64) * n_in / n_out
  lo, hi = edges[:-1, None], edges[1:, None]
  cells = np.arange(n_in, dtype=np.float64)[None, :]
  overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
  return overlap / overlap.sum(axis=1, keepdims=True)


def resize_volume(volume: np.ndarray, shape) -> np.ndarray:
  """Resamples `[D, H, W, C]` (or any `[*spatial, C]`) to `[*shape, C]` by separable area
  weights (`area_weights`), float32; a copy when the shape is unchanged."""
  out = np.asarray(volume, np.float32)
  shape = tuple(int(n) for n in shape)
  if len(shape) != out.ndim - 1:
    raise ValueError(f"shape {shape} needs one entry per spatial axis of {out.shape}")
  for axis, n in enumerate(shape):
    if out.shape[axis] != n:
      weights = area_weights(out.shape[axis], n).astype(np.float32)
      out = np.moveaxis(np.tensordot(weights, out, axes=([1], [axis])), 0, axis)
  return np.ascontiguousarray(out, np.float32)


def labels_to_volume_shape(labels: np.ndarray, shape) -> np.ndarray:
  """Nearest-neighbour resampling of a label map of any rank to `shape` (pixel centres
  matched per axis as `labels_to_shape`; no new label appears)."""
  labels = np.asarray(labels)
  shape = tuple(int(n) for n in shape)
  if len(shape) != labels.ndim:
    raise ValueError(f"shape {shape} needs one entry per axis of {labels.shape}")
  if shape == labels.shape:
    return labels.copy()
  index = np.ix_(*[nearest_indices(n_in, n_out) for n_in, n_out in zip(labels.shape, shape)])
  return labels[index]
