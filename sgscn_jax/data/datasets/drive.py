"""DRIVE retinal fundus images (Staal et al. 2004), official layout.

    <data_dir>/training/images/NN_training.tif        RGB, 584 x 565, LZW TIFF
    <data_dir>/training/1st_manual/NN_manual1.gif     vessels (0/255 GIF)
    <data_dir>/training/mask/NN_training_mask.gif     field of view (FOV)
    <data_dir>/test/images/NN_test.tif, test/1st_manual/..., test/mask/NN_test_mask.gif

`data_dir` may be the DRIVE root (both splits) or one split folder. The ground truth is
the first observer's vessel map; the FOV becomes `extra["valid"]` so that scores count
only pixels inside it. A split without a `1st_manual` folder (a release without test
labels) gives cases with `mask_path` None; a missing file inside an existing folder is
an error. Please cite Staal et al. 2004 when using DRIVE.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sgscn_jax.data.datasets import Case, Record, finish, load_record, require_dir

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): retinal vessels are darker than the fundus.
OBJECT_PRIOR = {"profile": "vessels", "polarity": "dark"}

SPLITS = ("training", "test")
_IMAGE = re.compile(r"^(\d+)_(training|test)\.tiff?$", re.IGNORECASE)


def _split_cases(folder: Path) -> list[Case]:
  images = folder / "images"
  if not images.is_dir():
    return []
  manual, fov = folder / "1st_manual", folder / "mask"
  if not fov.is_dir():
    raise ValueError(f"DRIVE split {os.fspath(folder)!r} has no 'mask' (field of view) folder")
  cases = []
  for path in images.iterdir():
    match = _IMAGE.match(path.name)
    if not match:
      continue
    number, split = match.group(1), match.group(2).lower()
    valid = fov / f"{number}_{split}_mask.gif"
    vessels = manual / f"{number}_manual1.gif" if manual.is_dir() else None
    for required in (valid, vessels):
      if required is not None and not required.is_file():
        raise ValueError(f"DRIVE case {path.stem}: missing {os.fspath(required)!r}")
    cases.append(Case(
        path.stem, os.fspath(path), None if vessels is None else os.fspath(vessels),
        {"split": split, "valid_path": os.fspath(valid)}))
  return cases


def list_cases(data_dir: str | os.PathLike, split: str | None = None) -> list[Case]:
  """The DRIVE cases under `data_dir`, sorted by id ("21_training", ...).

  Args:
    data_dir: the DRIVE root (holding `training/`, `test/`) or one split folder.
    split: "training", "test", or None for every split found.

  Returns:
    Cases with `extra = {"split": ..., "valid_path": FOV mask}`.
  """
  root = require_dir(data_dir, "DRIVE folder")
  if split is not None and split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
  if (root / "images").is_dir():  # a split folder itself
    cases = [c for c in _split_cases(root) if split in (None, c.extra["split"])]
  else:
    cases = [c for s in SPLITS if split in (None, s) for c in _split_cases(root / s)]
  return finish(cases, root, "DRIVE" + ("" if split is None else f" {split}"))


def load_case(case: Case) -> Record:
  """Decodes a DRIVE case: RGB image, vessel mask, and the FOV as `extra["valid"]`."""
  return load_record(case)
