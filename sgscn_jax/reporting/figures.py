"""The figures of a comparison of methods (`running.comparison`): the ablation's bar chart
and the cases figure, a grid of a few cases (best to worst of the first run) with each
run's largest-overlap segment, read back from the runs' folders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.reporting import charts, tables


def ablation_chart(columns: Sequence[tables.Column], title: str) -> np.ndarray:
  """DSC, Jaccard and XOR of each column: bars the mean over images, whiskers the std."""
  shown = [m for m in tables.METRICS if m.key in ("dice", "jaccard", "xor")]
  groups = [f"{m.label} ({m.better} is better)" for m in shown]
  series = []
  for c in columns:
    cells = [tables.metric_cell(c.summaries, m) for m in shown]
    series.append((c.title, [x.mean for x in cells], [x.std_images for x in cells]))
  return charts.bar_chart(groups, series, title=title,
                          y_label="% (bars: mean over images; whiskers: ± std over images)")


def pick_cases(rows: Sequence[Mapping[str, Any]], n: int,
               key: str = "largest_overlap.dice") -> List[str]:
  """`n` case ids spread over a run's ranking by `key` (best, ..., worst), evenly spaced."""
  scored = sorted(((r.get(key, math.nan), r["case_id"]) for r in rows),
                  key=lambda x: (-x[0] if math.isfinite(x[0]) else math.inf, x[1]))
  if not scored:
    return []
  picks = np.unique(np.round(np.linspace(0, len(scored) - 1, min(n, len(scored)))).astype(int))
  return [scored[i][1] for i in picks]


def cases_figure(runs: Sequence[Any], out_dir: Path, seed: int, cases: Sequence[Case],
                 load: Callable[[Case], Record], case_ids: Sequence[str],
                 panel_height: int = 128) -> Optional[np.ndarray]:
  """Rows = `case_ids`; columns image, ground truth, each run's largest-overlap segment
  (`runs`: each with a `slug`, its folder `out_dir/<slug>/seed<seed>`, and a `title`)."""
  by_id = {c.case_id: c for c in cases}
  rows = []
  for case_id in case_ids:
    record = load(by_id[case_id])
    if record.mask is None:
      continue
    valid = record.extra.get("valid")
    size = charts.panel_size(record.image.shape, panel_height)
    panels = [charts.segment_panel(record.image, None, None, height=panel_height),
              charts.mask_panel(charts.nearest(record.mask, size))]
    captions = ["", ""]
    for run in runs:
      path = out_dir / run.slug / f"seed{seed}" / "labels" / f"{case_id}.png"
      if not path.exists():
        panels.append(np.full(size + (3,), 255, np.uint8))
        captions.append("missing")
        continue
      labels = np.asarray(iio.imread(path)).astype(np.int64)
      pred = selection.select(labels, "largest_overlap", record.mask, valid)
      panels.append(charts.segment_panel(record.image, pred, record.mask, height=panel_height))
      captions.append(f"DSC {100 * metrics.dice(pred, record.mask, valid):.1f}")
    rows.append((case_id, panels, captions))
  if not rows:
    return None
  return charts.case_grid(
      ["image", "ground truth"] + [r.title for r in runs], rows, panel_height=panel_height,
      footer=f"yellow: each method's label with the largest overlap with the ground truth "
             f"(seed {seed}); cyan: ground-truth outline; DSC of that label")
