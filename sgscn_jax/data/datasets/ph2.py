"""PH2 dermoscopy (Mendonca et al., EMBC 2013) in its official layout.

    <data_dir>/PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp   RGB image
    <data_dir>/PH2 Dataset images/IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp       lesion mask
    <data_dir>/PH2_dataset.txt                                                 diagnoses

`data_dir` may also be the "PH2 Dataset images" folder itself (the table is then looked
for in its parent). Two table formats are read, both by the header's column names:
tab-separated (`Name<TAB>Clinical Diagnosis<TAB>...`, as in a subset) and the official
'||'-separated table (`|| Name || Histological Diagnosis || Clinical Diagnosis || ...`).
Clinical diagnosis: 0 common nevus, 1 atypical nevus, 2 melanoma. A missing table
gives `diagnosis` None for every case; a table in neither format is a ValueError.
Please cite Mendonca et al. 2013 when using PH2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sgscn_jax.data.datasets import Case, Record, finish, load_record, require_dir

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): pigmented skin lesions are darker than
# the skin around them, and show most in the blue channel (the dermoscopy prior of the Otsu
# (blue) baseline, REFERENCE.md section 4; docs/OBJECTS.md measures the object with it and with
# the generic rule, `--object_channel auto`).
OBJECT_PRIOR = {"profile": "lesion", "polarity": "dark", "channel": "2"}

IMAGES_FOLDER = "PH2 Dataset images"
TABLE = "PH2_dataset.txt"
DIAGNOSES = ("common nevus", "atypical nevus", "melanoma")
_CASE = re.compile(r"^IMD\d+$")


def _split(line: str, separator: str) -> list[str]:
  fields = [f.strip() for f in line.split(separator)]
  if separator == "||":  # '|| a || b ||' -> ['', 'a', 'b', '']
    fields = fields[1:-1] if len(fields) >= 2 and not fields[0] and not fields[-1] else fields
  return fields


def read_diagnoses(path: str | os.PathLike) -> dict[str, int | None]:
  """Clinical diagnosis per case id from a PH2 table (tab- or '||'-separated).

  Lines whose name column is not an `IMDxxx` id (legends, blank lines) are skipped; an
  empty diagnosis cell gives None.

  Raises:
    ValueError: no header with "Name" and "Clinical Diagnosis" columns, or a diagnosis
      other than 0, 1, 2.
  """
  path = Path(path)
  lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
  for i, line in enumerate(lines):
    separator = "||" if "||" in line else "\t" if "\t" in line else None
    if separator is None:
      continue
    header = [h.lower() for h in _split(line, separator)]
    if "name" in header and "clinical diagnosis" in header:
      name_at, diagnosis_at = header.index("name"), header.index("clinical diagnosis")
      break
  else:
    raise ValueError(
        f"{os.fspath(path)}: no header with 'Name' and 'Clinical Diagnosis' columns, "
        "separated by tabs or '||'; not a PH2 table this reader knows")
  diagnoses: dict[str, int | None] = {}
  for number, line in enumerate(lines[i + 1:], start=i + 2):
    fields = _split(line, separator)
    if len(fields) <= max(name_at, diagnosis_at) or not _CASE.match(fields[name_at]):
      continue
    cell = fields[diagnosis_at]
    if cell == "":
      diagnoses[fields[name_at]] = None
    elif cell in ("0", "1", "2"):
      diagnoses[fields[name_at]] = int(cell)
    else:
      raise ValueError(f"{os.fspath(path)}:{number}: clinical diagnosis {cell!r} is not 0, 1 or 2")
  return diagnoses


def list_cases(data_dir: str | os.PathLike, table: str | os.PathLike | None = None) -> list[Case]:
  """The PH2 cases under `data_dir`, sorted by id ("IMD003", ...).

  Args:
    data_dir: the folder holding "PH2 Dataset images" (or that folder itself).
    table: the diagnosis table; default `PH2_dataset.txt` beside "PH2 Dataset images".

  Returns:
    Cases with `extra = {"diagnosis": 0 | 1 | 2 | None, "diagnosis_name": str | None}`.

  Raises:
    ValueError: missing folder, no case, a case folder without its image or lesion mask,
      or an unreadable table.
  """
  root = require_dir(data_dir, "PH2 folder")
  images = root / IMAGES_FOLDER
  if not images.is_dir():
    images, root = root, root.parent
  table = Path(table) if table is not None else root / TABLE
  diagnoses = read_diagnoses(table) if table.is_file() else {}
  cases = []
  for folder in images.iterdir():
    if not (folder.is_dir() and _CASE.match(folder.name)):
      continue
    name = folder.name
    image = folder / f"{name}_Dermoscopic_Image" / f"{name}.bmp"
    mask = folder / f"{name}_lesion" / f"{name}_lesion.bmp"
    for path in (image, mask):
      if not path.is_file():
        raise ValueError(f"PH2 case {name}: missing {os.fspath(path)!r}")
    diagnosis = diagnoses.get(name)
    cases.append(Case(name, os.fspath(image), os.fspath(mask), {
        "diagnosis": diagnosis,
        "diagnosis_name": None if diagnosis is None else DIAGNOSES[diagnosis],
    }))
  return finish(cases, images, "PH2")


def load_case(case: Case) -> Record:
  """Decodes a PH2 case: RGB image [H, W, 3] and lesion mask [H, W] (see `load_record`)."""
  return load_record(case)
