"""Scoring saved label maps again, without re-running any segmentation.

Reads `<out_dir>/labels/<case>.png` (written by `running.images.run_dataset`, at the image's
resolution) and, where the run wrote one, `<out_dir>/objects/<case>.png` (its mask-free
object), scores each against its case's mask under every protocol, and writes
`<out_dir>/<name>.csv` and `<out_dir>/<name>.json` (the same summary shape as a run's).
Use it after changing a metric, a selection rule, or the ground truth.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import imageio.v3 as iio
import numpy as np

from sgscn_jax.running import runner, scoring
from sgscn_jax.data import resize
from sgscn_jax.running import results
from sgscn_jax.data import files
from sgscn_jax.data.datasets import Case, Record


def rescore(cases: Sequence[Case], load: Callable[[Case], Record], out_dir: str,
            name: str = "rescored") -> Dict[str, Any]:
  """Re-scores every case that has a label map in `out_dir`; returns the summary."""
  out = Path(out_dir)
  rows: List[Dict[str, Any]] = []
  missing, failures = [], []
  for case in cases:
    path = out / "labels" / f"{case.case_id}.png"
    if not path.exists():
      missing.append(case.case_id)
      continue
    try:
      record = load(case)
      labels = np.asarray(iio.imread(path)).astype(np.int64)
      if labels.shape != record.image.shape[:2]:
        labels = resize.labels_to_shape(labels, record.image.shape[:2])
      object_path = out / "objects" / f"{case.case_id}.png"
      found = np.asarray(iio.imread(object_path)) > 0 if object_path.exists() else None
      row: Dict[str, Any] = {"case_id": case.case_id, "n_labels": int(len(np.unique(labels)))}
      row.update(scoring.score_labels(labels, record, found))
      rows.append(row)
    except Exception as e:  # noqa: BLE001 - record and go on
      failures.append({"case_id": case.case_id, "path": str(path),
                       "reason": f"{type(e).__name__}: {e}"})
      print(f"failed: {case.case_id}: {e}", file=sys.stderr)
  results.write_csv_rows(out / f"{name}.csv", rows)
  if failures:
    results.write_csv_rows(out / f"{name}_failures.csv", failures, ["case_id", "path", "reason"])
  summary = {
      "cases": len(cases), "scored": len(rows), "missing_label_maps": missing,
      "failed": len(failures),
      "metrics": runner.metric_summary(rows),
  }
  files.atomic_write_bytes(out / f"{name}.json", (files.json_text(summary) + "\n").encode())
  return summary
