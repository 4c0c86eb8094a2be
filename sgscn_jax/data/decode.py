"""Decoding and normalising stored arrays: the steps every image, mask and volume reader shares.

An array leaves `normalise_intensities` as float32 in [0, 1] with a JSON-friendly `info`
dict that says how its intensities were mapped:

* ``bool``                      -> 0 / 1.
* ``uint8``                     -> value / 255.
* float already inside [0, 1]   -> kept as it is.
* any other integer type (``uint16``, ``int16``, ...) and float outside [0, 1] ->
  robust per-image window: ``low, high`` = the 0.5th and 99.5th percentiles of all the
  image's values (all channels together, so colour balance is kept), then
  ``clip((value - low) / (high - low), 0, 1)``. If the percentiles coincide the window
  widens to ``[min, max]``; a constant image becomes all zeros.

Channels (`channels_last`): a grey image gets a trailing axis of 1; with 2 or 4 channels
the last one is alpha and is dropped; a colour image whose channels are all equal (e.g.
the Kaggle lung CT TIFFs, RGB with R = G = B) becomes grey. TIFF files are recognised by
their first bytes (`is_tiff`) and decoded by `tifffile` (LZW and other codecs via
`imagecodecs`). Every failure is an `ImageReadError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

PathLike = str | os.PathLike
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PERCENTILES = (0.5, 99.5)


class ImageReadError(ValueError):
  """A file that cannot be used as an image, mask or volume; the message names it."""

  def __init__(self, path: PathLike, problem: str):
    super().__init__(f"{os.fspath(path)}: {problem}")
    self.path = os.fspath(path)
    self.problem = problem

  def __reduce__(self):  # picklable across processes despite the two-argument __init__
    return type(self), (self.path, self.problem)


def is_tiff(path: Path) -> bool:
  with open(path, "rb") as f:
    return f.read(4) in _TIFF_MAGIC


def check_file(path: PathLike) -> Path:
  path = Path(path)
  if not path.exists():
    raise ImageReadError(path, "no such file")
  if not path.is_file():
    raise ImageReadError(path, "not a regular file")
  if path.stat().st_size == 0:
    raise ImageReadError(path, "empty file")
  return path


def first_line(error: BaseException) -> str:
  """`Type: first line of the message`, followed by the chain's root cause when there is
  one (a plugin's generic error often hides the real reason, e.g. Pillow's
  DecompressionBombError behind imageio's "error initializing plugin pillow")."""
  def line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
  root, seen = error, {id(error)}
  while ((root.__cause__ or root.__context__) is not None
         and id(root.__cause__ or root.__context__) not in seen):
    root = root.__cause__ or root.__context__
    seen.add(id(root))
  return line(error) if root is error else f"{line(error)}; cause: {line(root)}"


def tiff_series(path: Path) -> tuple[np.ndarray, str]:
  """Decodes the first series of a TIFF; returns (array, axes), axes ending in YX[S|C]."""
  try:
    with tifffile.TiffFile(path) as tif:
      series = tif.series[0]
      array, axes = series.asarray(), series.axes
  except Exception as e:  # tifffile raises many types for bad files.
    raise ImageReadError(path, f"unreadable, corrupt or truncated TIFF ({first_line(e)})")
  for channel_axis in ("S", "C"):  # samples / channels -> last axis
    if channel_axis in axes and axes[-1] != channel_axis:
      i = axes.index(channel_axis)
      array = np.moveaxis(array, i, -1)
      axes = axes[:i] + axes[i + 1:] + channel_axis
  if not axes.rstrip("SC").endswith("YX") or len(axes) - len(axes.rstrip("SC")) > 1:
    raise ImageReadError(path, f"unsupported TIFF axes {axes} (shape {array.shape})")
  return array, axes


def channels_last(path: PathLike, array: np.ndarray, spatial: int) -> tuple[np.ndarray, str]:
  """[*spatial] or [*spatial, C] -> [*spatial, C'] with C' in {1, 3}, and its rule."""
  if array.ndim == spatial:
    return array[..., None], "grey"
  if array.ndim != spatial + 1 or array.shape[-1] not in (1, 2, 3, 4):
    raise ImageReadError(path, f"unsupported shape {array.shape}")
  channels = array.shape[-1]
  rule = {1: "grey", 2: "grey+alpha -> grey", 3: "rgb", 4: "rgba -> rgb"}[channels]
  if channels in (2, 4):
    array = array[..., :-1]
  if array.shape[-1] == 3 and np.array_equal(array[..., 0], array[..., 1]) and (
      np.array_equal(array[..., 0], array[..., 2])):
    array, rule = array[..., :1], rule.replace("rgb", "rgb with equal channels") + " -> grey"
  return array, rule


def check_size(path: PathLike, shape: tuple[int, ...], axes: str) -> None:
  for name, n in zip(axes, shape):
    if n < 2:
      raise ImageReadError(path, f"fewer than 2 pixels along {name} (shape {shape})")


def standardise(array) -> np.ndarray:
  """Zero mean and unit variance per channel over every pixel or voxel, float32:
  `(x - mean_c) / std_c` for an array `[..., C]` (a constant channel only loses its mean).
  Volumes reach the network this way by default (`volume.segment_volume`); 2D images
  only with `RunOptions.standardise` / `--standardise` (the paper feeds [0, 1])."""
  array = np.asarray(array, np.float32)
  axes = tuple(range(array.ndim - 1))
  mean = array.mean(axis=axes, dtype=np.float64)
  std = array.std(axis=axes, dtype=np.float64)
  return ((array - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def normalise_intensities(array: np.ndarray) -> tuple[np.ndarray, dict]:
  """Maps stored values to float32 in [0, 1] by the rules in the module docstring.

  Args:
    array: any shape; bool, integer or float, all finite.

  Returns:
    `(values, info)`: float32 array of the same shape and a dict with keys `dtype`,
    `rule`, `low`, `high` (the window mapped to [0, 1]).
  """
  dtype = array.dtype
  info: dict[str, Any] = {"dtype": str(dtype)}
  if dtype == np.bool_:
    info.update(rule="bool -> 0/1", low=0.0, high=1.0)
    return array.astype(np.float32), info
  if dtype == np.uint8:
    info.update(rule="uint8 / 255", low=0.0, high=255.0)
    return (array.astype(np.float32) / 255.0), info
  values = array.astype(np.float64)
  if np.issubdtype(dtype, np.floating) and values.min() >= 0.0 and values.max() <= 1.0:
    info.update(rule="float in [0, 1] kept", low=0.0, high=1.0)
    return values.astype(np.float32), info
  low, high = (float(v) for v in np.percentile(values, PERCENTILES))
  rule = f"percentile {PERCENTILES[0]}-{PERCENTILES[1]}, clipped"
  if high <= low:
    low, high = float(values.min()), float(values.max())
    rule = "min-max (percentiles coincide)"
  if high <= low:
    info.update(rule="constant image -> 0", low=low, high=high)
    return np.zeros(array.shape, np.float32), info
  info.update(rule=rule, low=low, high=high)
  return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32), info


def check_finite(path: PathLike, array: np.ndarray) -> None:
  if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
    raise ImageReadError(path, "contains NaN or infinite values")
