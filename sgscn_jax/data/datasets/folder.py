"""Any folder of images, with or without a folder of masks.

    <data_dir>/images/<name>.<ext>     (or the images directly in <data_dir>)
    <data_dir>/masks/<mask name>       optional; <mask name> from `mask_pattern`

`mask_pattern` maps an image file to its mask's name: a glob pattern in which
`{stem}` (file name without extension), `{name}` (full file name) and `{suffix}`
(extension with its dot) are replaced, e.g. "{stem}.*" (default: same stem, any
extension), "{stem}_mask.png", "{stem}_segmentation.*". Exactly one match is the mask,
none gives no mask (or an error with `require_masks`), several are an error. Masks and
images may share one folder: a file that is some image's mask is not itself an image.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from sgscn_jax.data.datasets import Case, Record, finish, load_record, require_dir

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): one central object, its side chosen
# by border contact.
OBJECT_PRIOR = {"profile": "lesion", "polarity": "auto"}

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".gif", ".tif", ".tiff")


def _mask_of(image: Path, masks: Path, pattern: str) -> Path | None:
  try:
    name = pattern.format(stem=glob.escape(image.stem), name=glob.escape(image.name),
                          suffix=glob.escape(image.suffix))
  except (KeyError, IndexError, ValueError) as e:
    raise ValueError(f"mask_pattern {pattern!r} may use only {{stem}}, {{name}}, {{suffix}}: {e}")
  matches = sorted(p for p in masks.glob(name) if p != image and p.is_file())
  if len(matches) > 1:
    raise ValueError(f"image {image.name}: several masks match {pattern!r} in "
                     f"{os.fspath(masks)!r}: {[p.name for p in matches[:5]]}")
  return matches[0] if matches else None


def list_cases(data_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None,
               masks_dir: str | os.PathLike | None = None, mask_pattern: str = "{stem}.*",
               require_masks: bool = False) -> list[Case]:
  """The images of a folder and their masks, sorted by id (the image's file stem).

  Args:
    data_dir: the data set's folder.
    images_dir: image folder, relative to `data_dir` or absolute; default `images/` if
      it exists, else `data_dir` itself.
    masks_dir: mask folder, likewise; default `masks/` if it exists, else no masks. A
      folder named here must exist.
    mask_pattern: glob pattern of an image's mask (see the module docstring).
    require_masks: raise if an image has no mask (instead of `mask_path` None).

  Raises:
    ValueError: missing folder, no image, ambiguous or missing (`require_masks`) mask,
      two images with one stem.
  """
  root = require_dir(data_dir, "data folder")
  if images_dir is None:
    images = root / "images" if (root / "images").is_dir() else root
  else:
    images = require_dir(root / images_dir, "image folder")
  if masks_dir is None:
    masks = root / "masks" if (root / "masks").is_dir() else None
  else:
    masks = require_dir(root / masks_dir, "mask folder")
  visible = sorted(p for p in images.iterdir() if p.is_file() and not p.name.startswith("."))
  files = [p for p in visible if p.suffix.lower() in IMAGE_SUFFIXES]
  skipped = [p.name for p in visible if p.suffix.lower() not in IMAGE_SUFFIXES]
  accepted = ", ".join(IMAGE_SUFFIXES)
  if skipped:
    print(f"skipping {len(skipped)} file(s) in {os.fspath(images)} that are not images "
          f"({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}); accepted: "
          f"{accepted}", file=sys.stderr)
  if not files:
    raise ValueError(f"no image cases found in {os.fspath(images)!r} (accepted extensions: "
                     f"{accepted})")
  pairs = {p: (None if masks is None else _mask_of(p, masks, mask_pattern)) for p in files}
  taken = {m.resolve() for m in pairs.values() if m is not None}
  cases = []
  for image, mask in pairs.items():
    if image.resolve() in taken:
      continue  # a mask living beside the images
    if mask is None and require_masks:
      raise ValueError(f"image {os.fspath(image)!r} has no mask matching {mask_pattern!r}"
                       f" in {os.fspath(masks) if masks else '(no mask folder)'!r}")
    cases.append(Case(image.stem, os.fspath(image), None if mask is None else os.fspath(mask), {}))
  return finish(cases, images, "image")


def load_case(case: Case) -> Record:
  """Decodes an image and, if it has one, its mask (see `load_record`)."""
  return load_record(case)
