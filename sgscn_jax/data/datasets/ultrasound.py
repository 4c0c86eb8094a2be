"""B-mode ultrasound images with optional tumour masks (e.g. BUS_UC, Iqbal and Sharif 2023).

    <data_dir>/images/<name>.<png|jpg|bmp|...>   grey, stored as grey or as RGB
    <data_dir>/masks/<mask name>                 optional; `mask_pattern` as for "folder"

The layout, mask matching and errors are the "folder" data set's (`folder.list_cases`;
names with spaces and parentheses, as BUSI publishes them, match literally, e.g.
`--mask_pattern '{stem}_mask.png'`). Each image is read as one grey channel (the mean of
its channels). Its scan region (`data.scan_region`: the dark frame outside the probe's
image, burnt-in text, scales and logos, calipers and colour markers left out) becomes
`extra["valid"]`, like DRIVE's field of view: scores and the object step see only the scan
region, and the drawn marks are painted over (`scan_region.fill_outside`) before the method
sees the image. The depth region below the last tissue stays in `valid`; the mass rule
reads it (`evaluation.masses`).

Masks are read at half range (`image_io.read_lossy_mask`: > 127 for 8 bits), not `> 0`:
masks stored as JPEG carry compression values (1-5 and more) around every edge, and `> 0`
grows each mask by about 1.5 px (on the shared BUS_UC images, about 8 % of its area). A
mask of which more than `SOFT_MASK_WARNING` of the pixels are neither 0 nor the maximum is
warned about once per mask folder (lossy or soft masks; the half-range reading applies).

The data-set priors (`OBJECT_PRIOR`, `DESPECKLE`) are properties of the modality, set here
and never per case: a tumour is a compact hypoechoic (dark) mass inside tissue, read with
B-mode anatomy (docs/OBJECTS.md step 8, profile "mass").
"""

from __future__ import annotations

import os
import sys

import numpy as np

from sgscn_jax.data import image_io, scan_region
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.data.datasets import folder

OBJECT_PRIOR = {"profile": "mass", "polarity": "dark"}
# SGSCN's published setting for its ultrasound data set (SYSU-US): SGD learning rate 0.05
# instead of 0.1 (REFERENCE.md section 1).
SGSCN_PRIOR = {"learning_rate": 0.05}
# The de-speckling filter applied to the method's working image (`data.speckle`), measured
# in docs/ULTRASOUND.md; "none" feeds the raw image as the paper does.
DESPECKLE = "none"
SOFT_MASK_WARNING = 0.005

_warned: set = set()


def list_cases(data_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None,
               masks_dir: str | os.PathLike | None = None, mask_pattern: str = "{stem}.*",
               require_masks: bool = False) -> list[Case]:
  """The images of an ultrasound folder and their masks (`folder.list_cases`)."""
  cases = folder.list_cases(data_dir, images_dir, masks_dir, mask_pattern, require_masks)
  return [c._replace(extra=dict(c.extra, modality="ultrasound")) for c in cases]


def load_case(case: Case) -> Record:
  """Decodes an ultrasound case: one grey channel with the drawn marks painted over, the
  scan region as `extra["valid"]`, the mask read at half range."""
  read = image_io.read_image(case.image_path)
  region = scan_region.find_scan_region(read.image)
  grey = scan_region.fill_outside(scan_region.grey(read.image), region.marks)
  image = np.ascontiguousarray(grey[..., None], np.float32)
  mask = None
  if case.mask_path is not None:
    mask, between = image_io.read_lossy_mask(case.mask_path, image.shape)
    where = os.path.dirname(case.mask_path)
    if between > SOFT_MASK_WARNING and where not in _warned:
      _warned.add(where)
      print(f"\nwarning: {case.mask_path}: {100 * between:.1f} % of the mask's pixels are "
            "neither 0 nor its maximum (a lossily stored or soft mask); masks in "
            f"{where} are read at half range", file=sys.stderr)
  extra = dict(case.extra, normalisation=dict(read.info, channels="grey (mean)"),
               valid=region.valid, frame_fraction=round(float(region.frame.mean()), 4),
               marks_fraction=round(float(region.marks.mean()), 4))
  return Record(case.case_id, image, mask, extra)
