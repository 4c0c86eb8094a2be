"""Data-set layouts, all yielding the same `Case` (cheap) and `Record` (decoded).

Each layout is one module with two functions:

* `list_cases(data_dir, **options) -> list[Case]`: finds the files, sorted by
  `case_id`, without decoding any image. A missing `data_dir` or a data set without a
  single case raises a `ValueError` naming the folder.
* `load_case(case) -> Record`: decodes the image (see `sgscn_jax.data.decode` for the
  normalisation rules) and the mask, checking that the mask has the image's size;
  any bad file raises `sgscn_jax.data.decode.ImageReadError`.

`get_dataset(name)` returns the module of a layout: "demo" (synthetic, generated), "ph2",
"drive", "lung_ct", "folder", "ultrasound" (a folder of B-mode images: grey, scan region,
masks read at half range), "volume" (NIfTI or TIFF volumes: `Record.image` is then
`[D, H, W, C]` and `Record.mask` `[D, H, W]`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Iterable, NamedTuple

import numpy as np

from sgscn_jax.data import image_io

__all__ = ["Case", "DATASETS", "Record", "despeckle_prior", "finish", "get_dataset",
           "list_dataset", "load_record", "object_prior", "require_dir", "sgscn_prior",
           "standardise_prior"]

DATASETS = ("demo", "ph2", "drive", "lung_ct", "folder", "ultrasound", "volume")


class Case(NamedTuple):
  """Where one case's files are; no pixel has been read."""
  case_id: str
  image_path: str
  mask_path: str | None  # None: no ground truth
  extra: dict  # e.g. "diagnosis" (PH2), "valid_path" (DRIVE field of view)


class Record(NamedTuple):
  """One decoded case."""
  case_id: str
  image: np.ndarray  # [H, W, C] float32 in [0, 1], C in {1, 3}
  mask: np.ndarray | None  # [H, W] bool ground truth, or None
  extra: dict  # Case.extra, plus "normalisation" (io info) and "valid" ([H, W] bool)


def get_dataset(name: str) -> ModuleType:
  """The module of layout `name` (one of `DATASETS`), with `list_cases` and `load_case`."""
  if name not in DATASETS:
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
  return importlib.import_module(f"{__name__}.{name}")


def require_dir(path: str | os.PathLike, what: str = "data folder") -> Path:
  """`path` as a Path if it is a folder, else a ValueError naming it."""
  path = Path(path)
  if not path.is_dir():
    raise ValueError(f"{what} {os.fspath(path)!r} does not exist or is not a folder")
  return path


def finish(cases: Iterable[Case], folder: str | os.PathLike, name: str) -> list[Case]:
  """Sorts cases by id; raises a ValueError naming `folder` when there are none, or when
  two cases share an id."""
  cases = sorted(cases, key=lambda c: c.case_id)
  if not cases:
    raise ValueError(f"no {name} cases found in {os.fspath(folder)!r}")
  ids = [c.case_id for c in cases]
  duplicates = sorted({i for i in ids if ids.count(i) > 1})
  if duplicates:
    raise ValueError(f"case ids occur twice in {os.fspath(folder)!r}: {duplicates[:5]}")
  return cases


def load_record(case: Case) -> Record:
  """Decodes a case: image, mask (if any) and, if `extra["valid_path"]`, the valid region.

  Both masks must have the image's height and width.

  Raises:
    ImageReadError: a missing or bad file, or a mask of another size than the image.
  """
  image, info = image_io.read_image(case.image_path)
  mask = None if case.mask_path is None else image_io.read_mask(case.mask_path, image.shape)
  extra = dict(case.extra, normalisation=info)
  if extra.get("valid_path") is not None:
    extra["valid"] = image_io.read_mask(extra["valid_path"], image.shape)
  return Record(case.case_id, image, mask, extra)


def list_dataset(name: str, data_dir=None, *, images=None, masks=None,
                 mask_pattern: str = "{stem}.*", demo_n: int = 4,
                 demo_size: int = 128, seed: int = 0, limit: int | None = None,
                 spacing=None, foreground: str = "none"):
  """The cases of data set `name` and its `load_case`, from the command line's options.

  `data_dir` is needed by every layout but "demo"; "folder", "ultrasound" and "volume" take `images`
  (default: `data_dir`), `masks` and `mask_pattern`; `limit` keeps the first N cases.
  "volume" also takes `spacing` and `foreground` ("none", "otsu" or a folder of masks:
  `datasets.volume.list_cases`); another layout refuses a `foreground` other than "none".

  Raises:
    ValueError: an unknown layout, a missing folder, or no case found (naming the folder).
  """
  module = get_dataset(name)
  if foreground != "none" and name != "volume":
    raise ValueError(f"--foreground {foreground}: only --dataset volume has a foreground "
                     f"option (2D data sets bring their own valid region)")
  if name == "demo":
    cases = module.list_cases(None, n=demo_n, shape=(demo_size, demo_size), seed=seed)
  elif name in ("folder", "ultrasound", "volume"):
    root = data_dir or images
    if root is None:
      raise ValueError(f"--dataset {name} needs --images (or --data_dir)")
    absolute = (lambda p: None if p is None else os.path.abspath(p)) if name == "volume" else (
        lambda p: p)
    kwargs = {"spacing": spacing, "foreground": foreground} if name == "volume" else {}
    cases = module.list_cases(absolute(root),
                              images_dir=absolute(images) if (name != "volume" or data_dir)
                              else None,
                              masks_dir=absolute(masks), mask_pattern=mask_pattern, **kwargs)
  else:
    if data_dir is None:
      raise ValueError(f"--dataset {name} needs --data_dir")
    cases = module.list_cases(data_dir)
  return (cases[:limit] if limit else cases), module.load_case


def object_prior(name: str) -> dict:
  """The data set's prior for the mask-free object step: `ObjectConfig` fields (profile,
  polarity, ...) that hold for the whole data set, e.g. PH2's lesions are darker than skin."""
  return dict(getattr(get_dataset(name), "OBJECT_PRIOR", {"profile": "lesion", "polarity": "auto"}))


def sgscn_prior(name: str) -> dict:
  """The data set's published SGSCN settings (`Config` fields) where the paper set them per
  data set, e.g. ultrasound's learning rate 0.05 (REFERENCE.md section 1); {} elsewhere.
  A flag given on the command line wins."""
  return dict(getattr(get_dataset(name), "SGSCN_PRIOR", {}))


def despeckle_prior(name: str) -> str:
  """The data set's de-speckling filter for the method's input (`data.speckle`; "none" for
  every data set but ultrasound, whose choice is measured in docs/ULTRASOUND.md)."""
  return getattr(get_dataset(name), "DESPECKLE", "none")


def standardise_prior(name: str, method: str) -> bool:
  """Whether `method` sees data set `name` standardised by default (`RunOptions.standardise`):
  the data set's `STANDARDISE_METHODS`, e.g. lung_ct's ("s3net",), whose [0, 1] slices make
  S3-Net collapse (docs/S3NET.md, "collapse on lung CT"); False elsewhere. A --standardise or
  --nostandardise given on the command line wins."""
  return method in getattr(get_dataset(name), "STANDARDISE_METHODS", ())
