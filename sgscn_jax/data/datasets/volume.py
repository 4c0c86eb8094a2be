"""A folder of volumes (NIfTI `.nii`/`.nii.gz` or multi-page TIFF), with or without masks.

    <data_dir>/images/<name>.nii.gz    (or the volumes directly in <data_dir>)
    <data_dir>/masks/<mask name>       optional; <mask name> from `mask_pattern`

As the `folder` layout, with `{stem}` the name without its volume suffix ('a.nii.gz' ->
'a'): `mask_pattern` "{stem}.*" (default), "{stem}_seg.nii.gz", ... A `Record` of this
layout holds `image` `[D, H, W, C]`, `mask` `[D, H, W]` (or None) and in `extra` the
`spacing` `(dz, dy, dx)` (None if unknown), its `unit`, and the `geometry`
(`volume_io.Geometry`) that label volumes are written with.

The foreground (`foreground`, a property of the data set, never of a case): "none" (the
default: every voxel counts), "otsu" (`data.foreground.foreground_mask` of each volume:
Otsu, large components, holes filled) or the name of a folder under `data_dir` that ships
each volume's own mask (`<folder>/<stem>.*`, e.g. a brain mask). It becomes
`extra["valid"]` `[D, H, W]` bool, as DRIVE's field of view: scores count only its voxels,
and a method that takes a mask (`atropos`, `jule`, `volume.masked`) clusters only inside.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from sgscn_jax.data import foreground as foreground_lib
from sgscn_jax.data import volume_io
from sgscn_jax.data.datasets import Case, Record, finish, require_dir

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): one central object; volumes at
# their own size.
OBJECT_PRIOR = {"profile": "lesion", "polarity": "auto", "analysis_size": None}
FOREGROUND_RULES = ("none", "otsu")   # or a folder of masks under data_dir


def _is_volume(path: Path) -> bool:
  return path.is_file() and not path.name.startswith(".") and (
      path.name.lower().endswith(volume_io.VOLUME_SUFFIXES))


def _mask_of(image: Path, masks: Path, pattern: str) -> Path | None:
  stem = volume_io.volume_stem(image)
  try:
    name = pattern.format(stem=glob.escape(stem), name=glob.escape(image.name),
                          suffix=glob.escape(image.name[len(stem):]))
  except (KeyError, IndexError, ValueError) as e:
    raise ValueError(f"mask_pattern {pattern!r} may use only {{stem}}, {{name}}, {{suffix}}: {e}")
  matches = sorted(p for p in masks.glob(name) if p != image and _is_volume(p))
  if len(matches) > 1:
    raise ValueError(f"volume {image.name}: several masks match {pattern!r} in "
                     f"{os.fspath(masks)!r}: {[p.name for p in matches[:5]]}")
  return matches[0] if matches else None


def list_cases(data_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None,
               masks_dir: str | os.PathLike | None = None, mask_pattern: str = "{stem}.*",
               spacing=None, foreground: str = "none") -> list[Case]:
  """The volumes of a folder and their masks, sorted by id (the name without suffix).

  Args:
    data_dir, images_dir, masks_dir, mask_pattern: as `datasets.folder.list_cases`.
    spacing: `(dz, dy, dx)` for volumes whose file states none (TIFF without metadata).
    foreground: "none", "otsu" or a folder of foreground masks (module docstring).

  Raises:
    ValueError: missing folder, no volume, ambiguous mask, two volumes with one stem.
  """
  root = require_dir(data_dir, "data folder")
  if images_dir is None:
    images = root / "images" if (root / "images").is_dir() else root
  else:
    images = require_dir(root / images_dir, "volume folder")
  if masks_dir is None:
    masks = root / "masks" if (root / "masks").is_dir() else None
  else:
    masks = require_dir(root / masks_dir, "mask folder")
  files = sorted(p for p in images.iterdir() if _is_volume(p))
  pairs = {p: (None if masks is None else _mask_of(p, masks, mask_pattern)) for p in files}
  taken = {m.resolve() for m in pairs.values() if m is not None}
  extra = {} if spacing is None else {"spacing": tuple(float(s) for s in spacing)}
  own = None
  if foreground not in FOREGROUND_RULES:
    own = require_dir(root / foreground, "foreground folder")
  elif foreground == "otsu":
    extra["foreground"] = "otsu"
  cases = []
  for p, m in pairs.items():
    if p.resolve() in taken:
      continue
    case_extra = dict(extra)
    if own is not None:
      found = _mask_of(p, own, "{stem}.*")
      if found is None:
        raise ValueError(f"volume {p.name}: no foreground mask {volume_io.volume_stem(p)}.* "
                         f"in {os.fspath(own)!r}")
      case_extra["foreground_path"] = os.fspath(found)
    cases.append(Case(volume_io.volume_stem(p), os.fspath(p),
                      None if m is None else os.fspath(m), case_extra))
  return finish(cases, images, "volume")


def load_case(case: Case) -> Record:
  """Decodes a volume, its spacing and geometry, its mask (if any) and its foreground
  (`extra["valid"]`, when the data set has one)."""
  vf = volume_io.read_volume_file(case.image_path, spacing=case.extra.get("spacing"))
  mask = (None if case.mask_path is None
          else volume_io.read_volume_mask(case.mask_path, vf.volume.shape))
  extra = dict(case.extra, normalisation=vf.info, spacing=vf.spacing,
               unit=vf.geometry.unit, geometry=vf.geometry)
  if case.extra.get("foreground_path"):
    extra["valid"] = volume_io.read_volume_mask(case.extra["foreground_path"], vf.volume.shape)
  elif case.extra.get("foreground") == "otsu":
    extra["valid"] = foreground_lib.foreground_mask(vf.volume, vf.spacing)
  return Record(case.case_id, vf.volume, mask, extra)
