"""Reading 2D images and masks from disk (host side, NumPy).

Everything here runs on the host (NumPy); nothing is jitted. An image leaves this
module as a float32 array `[H, W, C]` in [0, 1] with C = 1 (grey) or 3 (colour), and
a JSON-friendly `info` dict that says how its intensities were mapped
(`decode.normalise_intensities`):

* ``bool``                      -> 0 / 1.
* ``uint8``                     -> value / 255.
* float already inside [0, 1]   -> kept as it is.
* any other integer type (``uint16``, ``int16``, ...) and float outside [0, 1] ->
  robust per-image window: ``low, high`` = the 0.5th and 99.5th percentiles of all the
  image's values (all channels together, so colour balance is kept), then
  ``clip((value - low) / (high - low), 0, 1)``. If the percentiles coincide the window
  widens to ``[min, max]``; a constant image becomes all zeros.

Channels: a grey image gets a trailing axis of 1; with 2 or 4 channels the last one is
alpha and is dropped; a colour image whose channels are all equal (e.g. the Kaggle lung
CT TIFFs, RGB with R = G = B) becomes grey. A leading frame axis of length 1 (what
imageio returns for a GIF) is dropped; several frames are an error.

Decoding: TIFF files (recognised by their first bytes, not their name) go through
`tifffile` (LZW and other codecs via `imagecodecs`); every other format (PNG, BMP, JPEG,
GIF, ...) through `imageio`'s Pillow plugin. Every failure is an `ImageReadError` naming the file.
"""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
from typing import NamedTuple

from sgscn_jax.data.decode import (ImageReadError, PathLike, channels_last, check_file,
                                   check_finite, check_size, first_line, is_tiff,
                                   normalise_intensities, tiff_series)


class ImageRecord(NamedTuple):
  """A decoded, normalised 2D image."""
  image: np.ndarray  # [H, W, C] float32 in [0, 1], C in {1, 3}
  info: dict  # dtype, rule, low, high, channels, source_shape


def _decode_2d(path: PathLike) -> np.ndarray:
  """The stored array of a single-plane image: [H, W] or [H, W, C], native dtype."""
  path = check_file(path)
  if is_tiff(path):
    array, axes = tiff_series(path)
    extra = [(a, n) for a, n in zip(axes, array.shape) if a not in "YXSC" and n > 1]
    if extra:
      raise ImageReadError(
          path, f"a stack of shape {array.shape} (axes {axes}); use read_volume")
    keep = tuple(slice(None) if a in "YXSC" else 0 for a in axes)
    return array[keep]
  try:
    with iio.imopen(path, "r", plugin="pillow") as f:
      props = f.properties()
      array = f.read()
  except Exception as e:
    raise ImageReadError(path, f"unreadable, corrupt or truncated ({first_line(e)})")
  if props.is_batch:  # GIF and other animated formats: [frames, H, W(, C)]
    if array.shape[0] != 1:
      raise ImageReadError(path, f"{array.shape[0]} frames; expected one")
    array = array[0]
  return array


def read_image(path: PathLike) -> ImageRecord:
  """Reads a 2D image as float32 `[H, W, C]` in [0, 1], C in {1, 3}.

  Raises:
    ImageReadError: missing, unreadable, corrupt or truncated file; several frames or
      pages; unsupported shape; NaN/inf; fewer than 2 pixels along an axis.
  """
  raw = _decode_2d(path)
  source_shape = tuple(int(n) for n in raw.shape)
  raw, channels = channels_last(path, raw, spatial=2)
  check_size(path, raw.shape[:2], "HW")
  check_finite(path, raw)
  image, info = normalise_intensities(raw)
  info.update(channels=channels, source_shape=source_shape)
  return ImageRecord(np.ascontiguousarray(image), info)


def read_mask(path: PathLike, shape: tuple[int, ...] | None = None, *,
              half_range: bool = False) -> np.ndarray:
  """Reads a binary mask as bool `[H, W]`: foreground = stored value > 0 (with
  `half_range`: > half the type's range, e.g. > 127 for 8 bits, for masks stored lossily;
  `read_lossy_mask`).

  Works whatever the storage: 1-bit BMP, 0/255 grey, grey stored as RGB, palette GIF
  with its frame axis. For a colour mask a pixel is foreground when any colour channel
  is > 0 (alpha ignored); for R = G = B this is the same as `> 0` on one channel.

  Args:
    path: the mask file.
    shape: if given, the `(H, W, ...)` of the image the mask belongs to; only the first
      two entries are compared.

  Raises:
    ImageReadError: as `read_image`, and when the mask's size differs from `shape`.
  """
  raw = _decode_2d(path)
  return _mask_of(path, raw, _half_range(raw) if half_range else 0, shape)


def _mask_of(path: PathLike, raw: np.ndarray, level: float,
             shape: tuple[int, ...] | None) -> np.ndarray:
  if raw.ndim == 3 and raw.shape[-1] in (2, 4):
    raw = raw[..., :-1]
  if raw.ndim == 3 and raw.shape[-1] in (1, 3):
    check_finite(path, raw)
    mask = np.any(raw > level, axis=-1)
  elif raw.ndim == 2:
    check_finite(path, raw)
    mask = raw > level
  else:
    raise ImageReadError(path, f"unsupported mask shape {raw.shape}")
  check_size(path, mask.shape, "HW")
  if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
    raise ImageReadError(
        path, f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image is "
        f"{shape[0]}x{shape[1]}")
  return np.ascontiguousarray(mask)


def _top(raw: np.ndarray) -> float:
  """The largest value a mask of this dtype can store (floats: 1, or their max if above)."""
  if raw.dtype == bool:
    return 1.0
  if np.issubdtype(raw.dtype, np.integer):
    return float(np.iinfo(raw.dtype).max)
  return max(1.0, float(np.max(raw)))


def _half_range(raw: np.ndarray) -> float:
  return 0.0 if raw.dtype == bool else _top(raw) / 2


def read_lossy_mask(path: PathLike, shape: tuple[int, ...] | None = None
                    ) -> tuple[np.ndarray, float]:
  """A mask stored lossily (JPEG: compression rings every edge with small non-zero
  values), read at half range, and the share of its pixels that are neither 0 nor the
  type's maximum (a sign of lossy storage or of a soft mask)."""
  raw = _decode_2d(path)
  mask = _mask_of(path, raw, _half_range(raw), shape)
  between = float(np.mean((raw > 0) & (raw < _top(raw))))
  return mask, between
