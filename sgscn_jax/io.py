"""Reading images, masks and volumes from disk; writing label maps and PNGs.

Everything here runs on the host (NumPy); nothing is jitted. An image leaves this
module as a float32 array `[H, W, C]` in [0, 1] with C = 1 (grey) or 3 (colour), and
a JSON-friendly `info` dict that says how its intensities were mapped:

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

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import IO, Any, Iterator, NamedTuple

import imageio.v3 as iio
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


class ImageRecord(NamedTuple):
  """A decoded, normalised 2D image."""
  image: np.ndarray  # [H, W, C] float32 in [0, 1], C in {1, 3}
  info: dict  # dtype, rule, low, high, channels, source_shape


class VolumeRecord(NamedTuple):
  """A decoded, normalised 3D stack."""
  volume: np.ndarray  # [D, H, W, C] float32 in [0, 1], C in {1, 3}
  spacing: tuple[float, float, float] | None  # (dz, dy, dx) in `info["unit"]`, or None
  info: dict


# ----------------------------------------------------------------------------- decoding


def _is_tiff(path: Path) -> bool:
  with open(path, "rb") as f:
    return f.read(4) in _TIFF_MAGIC


def _check_file(path: PathLike) -> Path:
  path = Path(path)
  if not path.exists():
    raise ImageReadError(path, "no such file")
  if not path.is_file():
    raise ImageReadError(path, "not a regular file")
  if path.stat().st_size == 0:
    raise ImageReadError(path, "empty file")
  return path


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


def _tiff_series(path: Path) -> tuple[np.ndarray, str]:
  """Decodes the first series of a TIFF; returns (array, axes), axes ending in YX[S|C]."""
  try:
    with tifffile.TiffFile(path) as tif:
      series = tif.series[0]
      array, axes = series.asarray(), series.axes
  except Exception as e:  # tifffile raises many types for bad files.
    raise ImageReadError(path, f"unreadable, corrupt or truncated TIFF ({_first_line(e)})")
  for channel_axis in ("S", "C"):  # samples / channels -> last axis
    if channel_axis in axes and axes[-1] != channel_axis:
      i = axes.index(channel_axis)
      array = np.moveaxis(array, i, -1)
      axes = axes[:i] + axes[i + 1:] + channel_axis
  if not axes.rstrip("SC").endswith("YX") or len(axes) - len(axes.rstrip("SC")) > 1:
    raise ImageReadError(path, f"unsupported TIFF axes {axes} (shape {array.shape})")
  return array, axes


def _decode_2d(path: PathLike) -> np.ndarray:
  """The stored array of a single-plane image: [H, W] or [H, W, C], native dtype."""
  path = _check_file(path)
  if _is_tiff(path):
    array, axes = _tiff_series(path)
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
    raise ImageReadError(path, f"unreadable, corrupt or truncated ({_first_line(e)})")
  if props.is_batch:  # GIF and other animated formats: [frames, H, W(, C)]
    if array.shape[0] != 1:
      raise ImageReadError(path, f"{array.shape[0]} frames; expected one")
    array = array[0]
  return array


def _channels_last(path: PathLike, array: np.ndarray, spatial: int) -> tuple[np.ndarray, str]:
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


def _check_size(path: PathLike, shape: tuple[int, ...], axes: str) -> None:
  for name, n in zip(axes, shape):
    if n < 2:
      raise ImageReadError(path, f"fewer than 2 pixels along {name} (shape {shape})")


# ------------------------------------------------------------------------ normalisation


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


def _finite(path: PathLike, array: np.ndarray) -> None:
  if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
    raise ImageReadError(path, "contains NaN or infinite values")


# ------------------------------------------------------------------------------ readers


def read_image(path: PathLike) -> ImageRecord:
  """Reads a 2D image as float32 `[H, W, C]` in [0, 1], C in {1, 3}.

  Raises:
    ImageReadError: missing, unreadable, corrupt or truncated file; several frames or
      pages; unsupported shape; NaN/inf; fewer than 2 pixels along an axis.
  """
  raw = _decode_2d(path)
  source_shape = tuple(int(n) for n in raw.shape)
  raw, channels = _channels_last(path, raw, spatial=2)
  _check_size(path, raw.shape[:2], "HW")
  _finite(path, raw)
  image, info = normalise_intensities(raw)
  info.update(channels=channels, source_shape=source_shape)
  return ImageRecord(np.ascontiguousarray(image), info)


def read_mask(path: PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
  """Reads a binary mask as bool `[H, W]`: foreground = stored value > 0.

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
  if raw.ndim == 3 and raw.shape[-1] in (2, 4):
    raw = raw[..., :-1]
  if raw.ndim == 3 and raw.shape[-1] in (1, 3):
    _finite(path, raw)
    mask = np.any(raw > 0, axis=-1)
  elif raw.ndim == 2:
    _finite(path, raw)
    mask = raw > 0
  else:
    raise ImageReadError(path, f"unsupported mask shape {raw.shape}")
  _check_size(path, mask.shape, "HW")
  if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
    raise ImageReadError(
        path, f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image is "
        f"{shape[0]}x{shape[1]}")
  return np.ascontiguousarray(mask)


def _tiff_spacing(tif: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, str | None]:
  """(dz, dy, dx) from ImageJ or OME metadata when all three are known, else None."""
  if tif.is_ome and tif.ome_metadata:
    sizes = {a: re.search(rf'PhysicalSize{a}="([^"]+)"', tif.ome_metadata) for a in "ZYX"}
    if all(sizes.values()):
      unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
      return tuple(float(sizes[a].group(1)) for a in "ZYX"), unit.group(1) if unit else "um"
  meta = tif.imagej_metadata or {}
  page = tif.pages[0]
  try:
    xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
  except KeyError:
    return None, None
  if "spacing" not in meta or not (xres[0] > 0 and yres[0] > 0):
    return None, None
  spacing = (float(meta["spacing"]), yres[1] / yres[0], xres[1] / xres[0])
  return spacing, meta.get("unit")


def read_volume(path: PathLike) -> VolumeRecord:
  """Reads a multi-page TIFF (a 3D stack) as float32 `[D, H, W, C]` in [0, 1].

  The first series of the file is read; its sample/channel axis goes last and at most
  one other axis (pages, Z, T, ...) of length > 1 becomes D (a single page gives D = 1).
  Normalisation is that of `read_image`, over the whole volume at once.
  The spacing `(dz, dy, dx)` is read from OME-XML (`PhysicalSize{Z,Y,X}`) or from ImageJ
  metadata (`spacing` for dz, the X/YResolution tags for dy, dx); it is None unless all
  three are present and positive.

  Raises:
    ImageReadError: not a TIFF, unreadable, more than one stack axis, NaN/inf, ...
  """
  path = _check_file(path)
  if not _is_tiff(path):
    raise ImageReadError(path, "not a TIFF file; volumes are read from multi-page TIFF")
  array, axes = _tiff_series(path)
  spatial = [(a, n) for a, n in zip(axes, array.shape) if a not in "YXSC"]
  stack = [a for a, n in spatial if n > 1]
  if len(stack) > 1:
    raise ImageReadError(path, f"more than one stack axis ({axes}, shape {array.shape})")
  depth = int(np.prod([n for _, n in spatial], dtype=np.int64))
  array = array.reshape((depth,) + array.shape[len(spatial):])
  source_shape = tuple(int(n) for n in array.shape)
  array, channels = _channels_last(path, array, spatial=3)
  _check_size(path, array.shape[1:3], "HW")
  _finite(path, array)
  volume, info = normalise_intensities(array)
  try:
    with tifffile.TiffFile(path) as tif:
      spacing, unit = _tiff_spacing(tif)
  except Exception:  # metadata problems never make a readable volume unreadable
    spacing, unit = None, None
  info.update(channels=channels, source_shape=source_shape, axes=axes, unit=unit)
  return VolumeRecord(np.ascontiguousarray(volume), spacing, info)


# ------------------------------------------------------------------------------ writers


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
  """Opens a temporary file beside `path`; on success it replaces `path` atomically.

  Readers never see a half-written file: the data goes to `.<name>.<random>.tmp` in the
  same folder, is flushed and fsync'ed, then `os.replace`d onto `path`. On an exception
  the temporary file is removed and `path` is left as it was.

  Args:
    path: the destination; its folder is created if missing.
    mode: "wb" (bytes) or "w" (text, UTF-8).
  """
  if mode not in ("wb", "w"):
    raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
  # os.open with 0o666 lets the umask decide the final permissions, as open() does.
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
  """Writes `data` to `path` atomically (see `atomic_open`)."""
  with atomic_open(path, "wb") as f:
    f.write(data)


def write_png(path: PathLike, image: np.ndarray) -> None:
  """Writes a uint8 image `[H, W]`, `[H, W, 3]` or `[H, W, 4]` as PNG, atomically."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"write_png takes uint8, got {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
    raise ValueError(f"write_png takes [H, W], [H, W, 3] or [H, W, 4], got {image.shape}")
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  atomic_write_bytes(path, iio.imwrite("<bytes>", image, extension=".png"))


def write_label_map(path: PathLike, labels: np.ndarray) -> None:
  """Writes an integer label map `[H, W]` as a grey PNG, atomically.

  The PNG is 8-bit when every label is < 256, else 16-bit; labels must lie in
  [0, 65535]. Read it back with `imageio.v3.imread`, which returns the same integers.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
  if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
    raise ValueError(f"labels must be integers, got {labels.dtype}")
  low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
  if low < 0 or high > 65535:
    raise ValueError(f"labels must lie in [0, 65535], got [{low}, {high}]")
  dtype = np.uint8 if high < 256 else np.uint16
  atomic_write_bytes(path, iio.imwrite("<bytes>", labels.astype(dtype), extension=".png"))
