"""Writing run outputs atomically: bytes, PNG images, label maps and JSON.

Readers never see a half-written file (`atomic_open`); a run's "done" markers rely on it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data.decode import PathLike


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


def plain(value):
  """JSON-ready: NumPy scalars to Python, tuples to lists, NaN to null and +-inf to the
  strings "inf" / "-inf" (JSON has neither); anything else unknown to its `str`."""
  if isinstance(value, dict):
    return {str(k): plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, float) and math.isinf(value):
    return "inf" if value > 0 else "-inf"
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return str(value)


def json_text(value) -> str:
  """The one JSON form of every file a run writes (`plain` values, sorted keys)."""
  return json.dumps(plain(value), indent=1, sort_keys=True, allow_nan=False)


def write_json(path: PathLike, value) -> None:
  """`json_text(value)` to `path`, atomically."""
  atomic_write_bytes(path, (json_text(value) + "\n").encode())
