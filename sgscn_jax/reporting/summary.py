"""Markdown summaries of one run: a table per selection rule, then the run's statistics."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from sgscn_jax.evaluation import protocols

Stats = Dict[str, float]  # {"mean", "std", "n", "n_nan"}


def _pm(stats: Mapping[str, float], scale: float, decimals: int) -> str:
  if stats["n"] == 0:
    return "-"
  return (f"{stats['mean'] * scale:.{decimals}f} ± "
          f"{stats['std'] * scale:.{decimals}f}")


def _wrap(table: List[str], title: Optional[str], notes: Sequence[str]) -> str:
  head = [f"### {title}", ""] if title else []
  tail = [""] + [f"- {n}" for n in notes] if notes else []
  return "\n".join(head + table + tail) + "\n"


def summary_markdown(summary: Mapping[str, Stats], title: Optional[str] = None,
                     notes: Union[str, Sequence[str]] = (), *, scale: float = 100.0,
                     decimals: int = 1) -> str:
  """A Markdown table of one method: one row per metric, `mean ± std` in %.

  Columns: metric | mean ± std (%) | n, plus `NaN` (cases without a value) if any.
  Values are multiplied by `scale` (fractions -> %) and shown with `decimals` decimals.
  `notes` (a string or lines) follow the table as a bullet list.
  """
  notes = [notes] if isinstance(notes, str) else list(notes)
  with_nan = any(s["n_nan"] for s in summary.values())
  table = ["| metric | mean ± std (%) | n |" + (" NaN |" if with_nan else ""),
           "|---|---|---|" + ("---|" if with_nan else "")]
  for name, s in summary.items():
    table.append(f"| {name} | {_pm(s, scale, decimals)} | {s['n']} |"
                 + (f" {s['n_nan']} |" if with_nan else ""))
  return _wrap(table, title, notes)


def run_markdown(summary: Mapping[str, Any]) -> str:
  """summary.md of a run: per selection rule, the metrics in % (HD95 in the run's unit,
  `summary["hd95_unit"]`, pixels by default), then iterations, labels left and time."""
  unit = summary.get("hd95_unit", "pixels")
  parts = []
  for rule in protocols.ALL_PROTOCOLS:
    stats = {k.split(".", 1)[1]: v for k, v in summary["metrics"].items()
             if k.startswith(rule + ".")}
    if not stats:
      continue
    hd = stats.pop("hd95", None)
    notes = [f"Protocol: {protocols.PROTOCOL_TEXT[rule]}.",
             f"{summary['finished']} of {summary['cases']} cases, {summary['failed']} failed; "
             f"method {summary['method']}, seed {summary['seed']}."]
    if hd is not None:
      notes.append(f"HD95 ({unit}): {hd['mean']:.1f} ± {hd['std']:.1f}.")
    if summary.get("empty_masks"):
      notes.append(f"Empty ground truth in {len(summary['empty_masks'])} case(s) "
                   f"({', '.join(summary['empty_masks'][:5])}): {summary['empty_mask_rule']}.")
    parts.append(summary_markdown(
        stats, title=f"{summary['method']}, {protocols.PROTOCOL_NAMES[rule]}", notes=notes))
  if not parts:
    parts.append(f"# {summary['method']}\n\nNo ground truth: segmentation only, "
                 f"{summary['finished']} of {summary['cases']} cases.\n")
  it, nl = summary["iterations"], summary["n_labels"]
  parts.append(f"Iterations {it['mean']:.1f} ± {it['std']:.1f}; labels left "
               f"{nl['mean']:.1f} ± {nl['std']:.1f}; "
               f"seconds per case {summary['seconds_per_case']['mean']:.2f}.\n")
  return "\n".join(parts)
