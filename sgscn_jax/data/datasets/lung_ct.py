"""Kaggle "Finding and Measuring Lungs in CT Data": 2D CT slices with lung masks.

    <data_dir>/2d_images/ID_xxxx_Z_yyyy.tif    512 x 512, LZW TIFF, RGB with R = G = B
    <data_dir>/2d_masks/ID_xxxx_Z_yyyy.tif     lung mask, 0/255, same file name

The images are read as one grey channel (`sgscn_jax.data.decode` turns equal RGB channels into
grey). Every image must have its mask.
"""

from __future__ import annotations

import os

from sgscn_jax.data.datasets import Case, Record, finish, load_record, require_dir

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): in this Kaggle encoding (Hounsfield
# units wrapped into 8 bits, REFERENCE.md section 4) the lungs and the air outside the body
# are bright and soft tissue dark; the lungs are the bright parts inside the body.
OBJECT_PRIOR = {"profile": "lungs", "polarity": "bright"}

# The methods that see these slices standardised (zero mean, unit variance) by default
# (`datasets.standardise_prior`): with the [0, 1] intensities S3-Net's preset collapses into one
# cluster holding the body, the lungs and the air (docs/S3NET.md, "collapse on lung CT");
# SGSCN keeps the paper's [0, 1] input (docs/LUNG_CT.md).
STANDARDISE_METHODS = ("s3net",)

IMAGES_FOLDER = "2d_images"
MASKS_FOLDER = "2d_masks"


def list_cases(data_dir: str | os.PathLike) -> list[Case]:
  """The lung CT slices under `data_dir`, sorted by id (the file stem).

  Raises:
    ValueError: missing `2d_images` or `2d_masks` folder, no slice, or an image
      without a mask of the same name.
  """
  root = require_dir(data_dir, "lung CT folder")
  images = require_dir(root / IMAGES_FOLDER, "lung CT image folder")
  masks = require_dir(root / MASKS_FOLDER, "lung CT mask folder")
  cases = []
  for path in images.iterdir():
    if path.name.startswith(".") or path.suffix.lower() not in (".tif", ".tiff"):
      continue
    mask = masks / path.name
    if not mask.is_file():
      raise ValueError(f"lung CT slice {path.name}: missing mask {os.fspath(mask)!r}")
    cases.append(Case(path.stem, os.fspath(path), os.fspath(mask), {}))
  return finish(cases, images, "lung CT")


def load_case(case: Case) -> Record:
  """Decodes a slice: grey image [512, 512, 1] and lung mask [512, 512]."""
  return load_record(case)
