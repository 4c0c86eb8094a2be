"""`report.html`: one self-contained page per run folder (relative links, no server, no
network): the summary per protocol, every case in a table sortable by any column with
thumbnails that open full size, each case's loss and label-count history as a small plot,
and the run's settings and versions. A case whose label map collapsed (its row's `collapsed`:
the largest cluster holds at least `running.scoring.COLLAPSE_SHARE` of the pixels) is
highlighted, and counted under the title.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from sgscn_jax.data import files
from sgscn_jax.evaluation import protocols

REPORT = "report.html"
PICTURES = (("overlays", "overlay"), ("objects", "object"), ("labels_colour", "labels"),
            ("uncertainty", "agreement"), ("object_share", "object share"))
SCORES = ("dice", "jaccard", "hd95")

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; font-size: 13px; }
th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
td.id, th.id { text-align: left; }
img.thumb { height: 64px; display: block; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 12px; overflow-x: auto; }
.note { color: #555; font-size: 13px; }
tr.collapsed td { background: #fde0dc; }
.warn { color: #b00; font-weight: bold; }
"""

_SORT = """
document.querySelectorAll('table.sortable th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), up = th.dataset.order !== 'up';
    th.dataset.order = up ? 'up' : 'down';
    var key = function (row) {
      var cell = row.cells[column], v = cell.dataset.value !== undefined ? cell.dataset.value
                                                                         : cell.textContent;
      var x = parseFloat(v);
      return isNaN(x) ? v : x;
    };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x === 'number' && typeof y === 'number') return up ? x - y : y - x;
      return up ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _number(value: Any) -> Optional[float]:
  try:
    x = float(value)
  except (TypeError, ValueError):
    return None
  return x


def _pct(value: Any) -> str:
  x = _number(value)
  return "–" if x is None or math.isnan(x) else ("inf" if math.isinf(x) else f"{100 * x:.1f}")


def _history(path: Path) -> Optional[Dict[str, List[float]]]:
  if not path.exists():
    return None
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    return None
  return {"total": [float(r["total"]) for r in rows],
          "labels": [float(r["n_labels"]) for r in rows]}


def sparkline(values: Sequence[float], width: int = 90, height: int = 24,
              colour: str = "#1f77b4") -> str:
  """An inline SVG polyline of `values` (min to max scaled to the box)."""
  finite = [v for v in values if math.isfinite(v)]
  if len(finite) < 2:
    return ""
  lo, hi = min(finite), max(finite)
  span = hi - lo or 1.0
  step = width / (len(values) - 1)
  points = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}"
                    for i, v in enumerate(values) if math.isfinite(v))
  return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
          f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{points}"/></svg>')


def _summary_table(summary: Mapping[str, Any]) -> str:
  metrics = summary.get("metrics", {})
  keys = [k for k in protocols.ALL_PROTOCOLS if f"{k}.dice" in metrics]
  if not keys:
    return '<p class="note">No ground truth: segmentation only.</p>'
  head = "".join(f"<th>{html.escape(protocols.PROTOCOL_NAMES[k])}</th>" for k in keys)
  lines = [f"<table><thead><tr><th class='id'>metric (mean ± std over cases)</th>{head}"
           "</tr></thead><tbody>"]
  for metric in ("dice", "jaccard", "xor", "precision", "recall", "hd95"):
    cells = []
    for k in keys:
      stats = metrics.get(f"{k}.{metric}", {})
      scale = 1.0 if metric == "hd95" else 100.0
      mean, std = _number(stats.get("mean")), _number(stats.get("std"))
      text = "–" if mean is None or math.isnan(mean) else (
          f"{mean * scale:.1f}"
          + ("" if std is None or math.isnan(std) else f" ± {std * scale:.1f}"))
      cells.append(f"<td>{text}</td>")
    unit = " (" + summary.get("hd95_unit", "pixels") + ")" if metric == "hd95" else " (%)"
    lines.append(f"<tr><td class='id'>{metric}{unit}</td>{''.join(cells)}</tr>")
  lines.append("</tbody></table>")
  lines += [f'<p class="note">{html.escape(protocols.PROTOCOL_TEXT[k])}</p>' for k in keys]
  return "\n".join(lines)


def _case_table(out: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
  pictures = [(folder, name) for folder, name in PICTURES if (out / folder).is_dir()]
  head = ["<th class='id'>case</th>"] + [f"<th>{n}</th>" for _, n in pictures]
  head += [f"<th>{protocols.PROTOCOL_NAMES[k]} DSC</th>" for k in keys]
  head += ["<th>iterations</th><th>labels</th><th>loss</th><th>labels per iteration</th>",
           "<th>seconds</th><th class='id'>intensity</th>"]
  lines = ["<table class='sortable'><thead><tr>" + "".join(head) + "</tr></thead><tbody>"]
  for row in rows:
    case = str(row["case_id"])
    cells = [f"<td class='id'>{html.escape(case)}</td>"]
    for folder, _ in pictures:
      path = f"{folder}/{case}.png"
      cells.append(f"<td><a href='{html.escape(path)}'><img class='thumb' src='{html.escape(path)}'"
                   f" alt='{folder} {html.escape(case)}'></a></td>" if (out / path).exists()
                   else "<td></td>")
    for k in keys:
      value = _number(row.get(f"{k}.dice"))
      cells.append(f"<td data-value='{'' if value is None else value}'>{_pct(value)}</td>")
    history = _history(out / "history" / f"{case}.csv")
    collapsed = _collapsed(row)
    labels = str(row.get('n_labels', ''))
    labels = (f"<td data-value='{html.escape(labels)}' title='collapsed: one cluster holds "
              f"{_pct(row.get('largest_share'))} % of the pixels'>{html.escape(labels)} "
              "<span class='warn'>collapsed</span></td>") if collapsed else f"<td>{labels}</td>"
    cells += [f"<td>{row.get('iterations', '')}</td>", labels,
              f"<td>{sparkline(history['total']) if history else ''}</td>",
              f"<td>{sparkline(history['labels'], colour='#d62728') if history else ''}</td>",
              f"<td>{row.get('seconds', '')}</td>",
              f"<td class='id'>{html.escape(str(row.get('intensity', '')))}</td>"]
    lines.append(("<tr class='collapsed'>" if collapsed else "<tr>") + "".join(cells) + "</tr>")
  lines.append("</tbody></table>")
  return "\n".join(lines)


def _collapsed(row: Mapping[str, Any]) -> bool:
  """The row's `collapsed` flag (a bool from cases/*.json, or "True" read back from a CSV)."""
  return str(row.get("collapsed", "")).lower() in ("true", "1")


def _colour_labels(out: Path, rows: Sequence[Mapping[str, Any]]) -> None:
  """`labels_colour/<case>.png`: each 2D label map in a fixed colour per label (the label
  PNGs hold ids 0..K-1 as grey levels, which look black)."""
  import imageio.v3 as iio
  from sgscn_jax.reporting import overlays
  for row in rows:
    source = out / "labels" / f"{row['case_id']}.png"
    target = out / "labels_colour" / f"{row['case_id']}.png"
    if source.exists() and (not target.exists() or target.stat().st_mtime < source.stat().st_mtime):
      files.write_png(target, overlays.label_colours(iio.imread(source)))


def write_report(out_dir: str | Path, summary: Mapping[str, Any],
                 rows: Sequence[Mapping[str, Any]],
                 run_info: Optional[Mapping[str, Any]] = None) -> Path:
  """Writes `<out_dir>/report.html` (atomically; with `labels_colour/`) and returns its path."""
  out = Path(out_dir)
  _colour_labels(out, rows)
  keys = [k for k in protocols.ALL_PROTOCOLS if any(f"{k}.dice" in r for r in rows)]
  title = f"{summary.get('method', 'run')}: {summary.get('finished', 0)} of " \
          f"{summary.get('cases', 0)} cases"
  failed = summary.get("failed", 0)
  collapsed = [str(r["case_id"]) for r in rows if _collapsed(r)]
  warning = (f"<p class='warn'>{len(collapsed)} of {len(rows)} cases collapsed (one cluster "
             "holds nearly the whole image: the run's `collapsed` rule; highlighted below): "
             + html.escape(", ".join(collapsed[:10]) + (", ..." if len(collapsed) > 10 else ""))
             + "</p>") if collapsed else ""
  parts = [
      "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
      f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
      f"<h1>{html.escape(title)}</h1>",
      f"<p class='note'>seed {summary.get('seed')}; {failed} failed"
      + (" (<a href='failures.csv'>failures.csv</a>)" if failed and (out / 'failures.csv').exists()
         else "") + "; <a href='summary.md'>summary.md</a>, <a href='results.csv'>results.csv</a>"
      + (", <a href='montage.png'>montage.png</a>" if (out / "montage.png").exists() else "")
      + "</p>", warning,
      "<h2>Summary</h2>", _summary_table(summary),
      "<h2>Cases</h2><p class='note'>Click a column's header to sort by it; a thumbnail opens "
      "full size. Overlays: yellow the selected cluster, cyan the ground truth, magenta the "
      "object.</p>", _case_table(out, rows, keys),
      "<h2>Settings and versions</h2>",
      "<pre>" + html.escape(json.dumps(files.plain({"config": summary.get("config"),
                                                     "options": summary.get("options"),
                                                     "versions": summary.get("versions"),
                                                     "command": (run_info or {}).get("argv")}),
                                         indent=1, sort_keys=True)) + "</pre>",
      f"<script>{_SORT}</script></body></html>",
  ]
  path = out / REPORT
  files.atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
  return path
