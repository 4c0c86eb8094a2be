"""The run's montage.png: the first cases as the run folder holds them, one row each.

Each row is read back from the folder (`cases/<id>.json`, `labels/`, `objects/`,
`uncertainty/`, `object_share/`), not from memory, so a resumed run's montage shows its
earlier cases too: image, truth, the answer a user gets (the mask-free object when there is
one, else the overlay rule's cluster) with its DSC, the label map, and where the seeds or
members agree. The drawing is `reporting.overlays.montage`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data import files
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.reporting import overlays
from sgscn_jax.running import results, scoring
from sgscn_jax.running.options import RunOptions


def write_montage(cases: Sequence[Case], load: Callable[[Case], Record],
                  options: RunOptions) -> None:
  """`out/montage.png` of the first `options.montage_cases` finished cases (nothing if none)."""
  out = Path(options.out_dir)
  rows = []
  for case in cases[: options.montage_cases]:
    path = out / "labels" / f"{case.case_id}.png"
    row = results.read_case(out, case.case_id)
    if row is None or not path.exists():
      continue
    record = load(case)
    labels = np.asarray(iio.imread(path)).astype(np.int64)
    object_path = out / "objects" / f"{case.case_id}.png"
    if object_path.exists():  # the answer a user gets: the mask-free object
      pred, protocol = np.asarray(iio.imread(object_path)) > 0, "object"
    else:
      pred = scoring.overlay_prediction(labels, record, options.overlay_rule)
      protocol = options.overlay_rule
    dsc = row.get(f"{protocol}.dice")
    title = case.case_id + ("" if dsc is None or math.isnan(dsc) else f"  DSC {100 * dsc:.1f}")
    agreement_path = out / "uncertainty" / f"{case.case_id}.png"
    agreement = np.asarray(iio.imread(agreement_path)) if agreement_path.exists() else None
    share_path = out / "object_share" / f"{case.case_id}.png"
    if object_path.exists() and share_path.exists():   # seeds' objects voted: their agreement
      share = np.asarray(iio.imread(share_path)).astype(np.int32)
      agreement = np.maximum(share, 255 - share).astype(np.uint8)
    rows.append((title, record.image, record.mask, pred, labels, agreement))
  if rows:
    height = min(256, max(r[1].shape[0] for r in rows))
    header = "object" if (out / "objects").is_dir() else "prediction"
    files.write_png(out / "montage.png",
                    overlays.montage(rows, panel_height=height, prediction_header=header))
