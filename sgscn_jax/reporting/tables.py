"""The paper's Table 1 layout, built from finished runs' summaries (host side, no JAX).

A table has one column per method and one row per metric. Each column holds the runs of
one method over S seeds (`running.images.run_dataset` summaries, one per seed). For metric m
of column c, with `mean_s` and `std_s` the mean and standard deviation over images of
run s (as in its `summary.json`, population std, n = images), the cell is

    mean        = (1/S) sum_s mean_s                                  (mean over images, then seeds)
    std_seeds   = sqrt( sum_s (mean_s - mean)^2 / (S - 1) )           (sample std; NaN if S = 1)
    std_images  = (1/S) sum_s std_s                                   (the spread over images)

in % for the overlap scores (fractions x 100), in pixels for HD95. Wall-time rows come
from the same summaries: seconds per image = mean over seeds of the runs' mean seconds
per case (segmentation of its batch divided by the batch's images, compilation
included, plus loading); total seconds = sum over seeds of mean x images.

`table_markdown` writes the Markdown (`mean` or `mean ± std_seeds` when S > 1, the
definitions and protocol under it), `table_csv_rows` the same numbers with both
standard deviations for `results.write_csv_rows`. `paired_difference` / `paired_text`
compare two columns case by case (they need the columns' per-case `rows`): the mean of
a − b, a 95 % bootstrap interval over cases, per-seed means and wins, so that a reader can
tell a resolved ordering from one inside the noise. `copy_stamped` copies the tables
into a folder of the docs, each headed by the command and the commit that made it
(`reporting.stamps`); the paper's published figures are `reporting.paper`'s.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

# The paper's figures and the docs' stamps live in their own modules; their names are also
# importable from here.
from sgscn_jax.reporting.paper import (PAPER_FIGURES, PAPER_PH2, PAPER_ROWS,  # noqa: F401
                                       PAPER_ULTRASOUND, paper_figures, paper_ph2)
from sgscn_jax.reporting.stamps import (STAMPED_SUFFIXES, copy_stamped,  # noqa: F401
                                        source_commit, stamp_line)


class Metric(NamedTuple):
  key: str          # as in `metrics.METRIC_NAMES` / the summaries' "<rule>.<key>"
  label: str        # the row's name
  unit: str         # "%" (fraction x 100) or "px"
  better: str       # "higher" or "lower"
  definition: str   # A = prediction, B = ground truth


METRICS = (
    Metric("dice", "DSC", "%", "higher", "DSC = 2|A∩B| / (|A| + |B|)"),
    Metric("jaccard", "Jaccard", "%", "higher", "J = |A∩B| / |A∪B|"),
    Metric("xor", "XOR", "%", "lower",
           "XOR = |A⊕B| / |B|, unbounded (Hance et al. 1996)"),
    Metric("hammoude", "HM = 1 − J", "%", "lower",
           "HM (Hammoude distance) = (|A∪B| − |A∩B|) / |A∪B| = 1 − J, in [0, 100] % "
           "(Silveira et al. 2009)"),
    Metric("xor_over_intersection", "XOR/I", "%", "lower",
           "XOR/I = |A⊕B| / |A∩B|, unbounded: the candidate for the paper's HM above 100 %, "
           "under its own name"),
    Metric("precision", "precision", "%", "higher", "precision = |A∩B| / |A|"),
    Metric("recall", "recall", "%", "higher", "recall = |A∩B| / |B|"),
    Metric("hd95", "HD95 (px)", "px", "lower",
           "HD95 = the larger of the two directed 95th-percentile distances between the "
           "boundaries of A and B, in pixels of the mask"),
)

class Column(NamedTuple):
  slug: str                        # CSV header, e.g. "kmeans_k3"
  title: str                       # Markdown header, e.g. "k-means k=3"
  summaries: Sequence[Mapping[str, Any]]  # one `summary.json` per seed
  paper: Mapping[str, float] = {}  # published numbers in %, keys as in PAPER_ROWS
  rows: Sequence[Sequence[Mapping[str, Any]]] = ()  # per seed, per-case rows (paired tests)


class Cell(NamedTuple):
  mean: float
  std_seeds: float
  std_images: float
  n_images: int    # images of the run with the fewest (equal unless some failed)
  n_seeds: int


def _number(value: Any) -> float:
  """A summary value as float: JSON may hold "nan" / "inf" strings or null."""
  return math.nan if value is None else float(value)


def _scale(metric: Metric) -> float:
  return 100.0 if metric.unit == "%" else 1.0


def _cell(means: Sequence[float], stds: Sequence[float], ns: Sequence[int]) -> Cell:
  m = np.asarray(means, np.float64)
  s = len(m)
  with np.errstate(invalid="ignore"):
    mean = float(m.mean()) if s else math.nan
    std_seeds = float(m.std(ddof=1)) if s > 1 and np.all(np.isfinite(m)) else math.nan
    std_images = float(np.mean(stds)) if s else math.nan
  return Cell(mean, std_seeds, std_images, int(min(ns)) if s else 0, s)


def metric_cell(summaries: Sequence[Mapping[str, Any]], metric: Metric,
                rule: str = "largest_overlap") -> Cell:
  """One metric of one column (see the module docstring), in the metric's unit."""
  means, stds, ns = [], [], []
  for summary in summaries:
    stats = summary["metrics"].get(f"{rule}.{metric.key}")
    if stats is None:
      continue
    means.append(_number(stats["mean"]) * _scale(metric))
    stds.append(_number(stats["std"]) * _scale(metric))
    ns.append(int(stats["n"]))
  return _cell(means, stds, ns)


def time_cells(summaries: Sequence[Mapping[str, Any]]) -> Dict[str, Cell]:
  """`seconds_per_image` and `total_seconds` of one column (see the module docstring)."""
  per, total, stds, ns = [], [], [], []
  for summary in summaries:
    stats = summary["seconds_per_case"]
    per.append(_number(stats["mean"]))
    stds.append(_number(stats["std"]))
    ns.append(int(stats["n"]))
    total.append(_number(stats["mean"]) * int(stats["n"]))
  cells = {"seconds_per_image": _cell(per, stds, ns)}
  cells["total_seconds"] = Cell(float(np.sum(total)), math.nan, math.nan,
                                int(min(ns)) if ns else 0, len(ns))
  return cells


def column_cells(column: Column, rule: str = "largest_overlap") -> Dict[str, Cell]:
  """Every row of one column: the metrics, then the wall-time rows."""
  cells = {m.key: metric_cell(column.summaries, m, rule) for m in METRICS}
  cells.update(time_cells(column.summaries))
  return cells


def _fmt(x: float, decimals: int) -> str:
  if math.isnan(x):
    return "–"
  if math.isinf(x):
    return "inf" if x > 0 else "-inf"
  return f"{x:.{decimals}f}"


def _text(cell: Cell, decimals: int = 1) -> str:
  if cell.n_seeds == 0:
    return "–"
  text = _fmt(cell.mean, decimals)
  if cell.n_seeds > 1 and not math.isnan(cell.std_seeds):
    text += f" ± {_fmt(cell.std_seeds, decimals)}"
  return text


def ranking(columns: Sequence[Column], metric: Metric = METRICS[0],
            rule: str = "largest_overlap") -> str:
  """`"A 80.1 > B 75.3 > ..."`: the columns ordered by a metric's mean, best first."""
  scored = [(metric_cell(c.summaries, metric, rule).mean, c.title) for c in columns]
  scored = [(v, t) for v, t in scored if not math.isnan(v)]
  scored.sort(key=lambda vt: -vt[0] if metric.better == "higher" else vt[0])
  sign = " > " if metric.better == "higher" else " < "
  return sign.join(f"{t} {_fmt(v, 1)}" for v, t in scored)


def infinite_counts(column: Column, metric: Metric, rule: str = "largest_overlap"
                    ) -> Tuple[int, int]:
  """`(infinite, scored)`: of the column's case-seed rows that hold a number for the
  metric, how many hold +-inf (an unbounded ratio whose denominator is 0, e.g. XOR/I where
  the prediction misses the ground truth: A∩B = ∅). Such a row makes its run's mean
  infinite; this says how many rows did it."""
  key = f"{rule}.{metric.key}"
  values = [_number(r.get(key)) for seed in column.rows for r in seed]
  scored = [v for v in values if not math.isnan(v)]
  return sum(math.isinf(v) for v in scored), len(scored)


def _infinite_note(columns: Sequence[Column], cells: Sequence[Mapping[str, Cell]],
                   rule: str) -> List[str]:
  """One line per metric with an infinite cell: which columns, in how many rows."""
  lines = []
  for m in METRICS:
    parts = []
    for column, cell in zip(columns, cells):
      if not math.isinf(cell[m.key].mean):
        continue
      n_inf, n = infinite_counts(column, m, rule)
      parts.append(f"{column.title} in {n_inf} of {n} case-seed pairs" if n
                   else column.title)
    if parts:
      why = (" (a prediction that misses the ground truth: A∩B = ∅)"
             if m.key == "xor_over_intersection" else "")
      lines.append(f"{m.label} is infinite for an image whose denominator is 0{why}, and one "
                   "such image makes its run's mean infinite: " + "; ".join(parts) + ".")
  return lines


def table_markdown(columns: Sequence[Column], title: str, rule: str = "largest_overlap",
                   findings: Sequence[str] = (), notes: Sequence[str] = (),
                   decimals: int = 1) -> str:
  """The table as Markdown: metric rows, wall-time rows, the paper's rows (if any
  column has them), then `findings`, the metric definitions and the protocol `notes`
  as bullet lists."""
  cells = [column_cells(c, rule) for c in columns]
  n_seeds = max((c[METRICS[0].key].n_seeds for c in cells), default=0)
  lines = [f"### {title}", "",
           "| metric | " + " | ".join(c.title for c in columns) + " |",
           "|---|" + "---|" * len(columns)]
  for m in METRICS:
    arrow = "↑" if m.better == "higher" else "↓"
    label = f"{m.label} ({m.unit}) {arrow}" if m.unit == "%" else f"{m.label} {arrow}"
    lines.append(f"| {label} | " + " | ".join(_text(c[m.key], decimals) for c in cells) + " |")
  lines.append("| seconds per image | "
               + " | ".join(_text(c["seconds_per_image"], 2) for c in cells) + " |")
  lines.append("| total seconds | "
               + " | ".join(_fmt(c["total_seconds"].mean, 0) for c in cells) + " |")
  lines.append("| images | " + " | ".join(str(c[METRICS[0].key].n_images) for c in cells) + " |")
  if any(c.paper for c in columns):
    for key, label in PAPER_ROWS:
      lines.append(f"| {label} | " + " | ".join(
          _fmt(c.paper[key], 1) if key in c.paper else "–" for c in columns) + " |")
  spread = (f"mean ± standard deviation over {n_seeds} seeds (sample, n − 1)" if n_seeds > 1
            else "one seed: mean only")
  lines += ["", f"Cells: mean over images of each run, then over seeds; {spread}. "
            "The standard deviation over images is in the CSV. ↑ higher is better, "
            "↓ lower is better."]
  infinite = _infinite_note(columns, cells, rule)
  if infinite:
    lines += [""] + infinite
  if findings:
    lines += [""] + [f"- {f}" for f in findings]
  lines += ["", "Metrics (A = prediction, B = ground truth, "
            "per image at the mask's resolution, then averaged):", ""]
  lines += [f"- {m.definition}." for m in METRICS]
  lines += ["- seconds per image: segmentation of the image's batch divided by its images "
            "(compilation included, so the first batch carries it) plus loading; "
            "total seconds: summed over images and seeds."]
  if notes:
    lines += ["", "Protocol:", ""] + [f"- {n}" for n in notes]
  return "\n".join(lines) + "\n"


class Paired(NamedTuple):
  """`a − b` on one metric over the cases both columns scored, seed by seed."""
  mean: float                 # mean over seeds of the per-seed mean paired difference
  per_seed: tuple             # per seed: mean over its cases of (a − b)
  ci95: tuple                 # 95 % bootstrap interval of `mean`, resampling cases
  wins: int                   # (case, seed) pairs where a is better
  losses: int                 # ... where b is better (the rest are ties)
  n: int                      # (case, seed) pairs compared


def paired_values(a: Column, b: Column, metric: Metric = METRICS[0],
                  rule: str = "largest_overlap"
                  ) -> Optional[Tuple[List[str], np.ndarray, np.ndarray]]:
  """`(case ids, A [S, N], B [S, N])` in the metric's unit: the cases finite in every
  seed of both columns (the ones `paired_difference` compares), sorted; None when the
  columns share no seed rows or no such case."""
  seeds = min(len(a.rows), len(b.rows))
  key = f"{rule}.{metric.key}"
  values = []
  for s in range(seeds):
    va = {r["case_id"]: _number(r.get(key)) for r in a.rows[s]}
    vb = {r["case_id"]: _number(r.get(key)) for r in b.rows[s]}
    values.append((va, vb))
  if not values:
    return None
  ids = sorted(set.intersection(*(
      {i for i in va if i in vb and math.isfinite(va[i]) and math.isfinite(vb[i])}
      for va, vb in values)))
  if not ids:
    return None
  scale = _scale(metric)
  return (ids, np.array([[va[i] for i in ids] for va, _ in values]) * scale,
          np.array([[vb[i] for i in ids] for _, vb in values]) * scale)


def paired_difference(a: Column, b: Column, metric: Metric = METRICS[0],
                      rule: str = "largest_overlap", resamples: int = 2000,
                      seed: int = 0) -> Optional[Paired]:
  """Paired comparison of two columns run on the same cases and seeds.

  For seed s and case i with both values finite, d_si = a_si − b_si (in the metric's
  unit). Cases are the ones present in every seed of both columns, so that the
  bootstrap can resample cases: with d_i = (1/S) sum_s d_si, the interval is the 2.5th
  and 97.5th percentiles of mean(d_i over a resample of the cases, with replacement)
  over `resamples` draws. "Better" follows `metric.better`. None when the columns
  share no seed rows.
  """
  paired = paired_values(a, b, metric, rule)
  if paired is None:
    return None
  ids, va, vb = paired
  d = va - vb  # [S, N]
  sign = 1.0 if metric.better == "higher" else -1.0
  per_case = d.mean(axis=0)
  draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
  boot = per_case[draws].mean(axis=1)
  return Paired(float(d.mean()), tuple(float(x) for x in d.mean(axis=1)),
                (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
                int(np.sum(sign * d > 0)), int(np.sum(sign * d < 0)), int(d.size))


def paired_text(a: Column, b: Column, metric: Metric = METRICS[0],
                rule: str = "largest_overlap") -> Optional[str]:
  """One finding line, e.g. "SGSCN − IIC, DSC: +1.8 (95 % CI −1.2 to +4.9 over cases;
  per seed +1.8 / ...); SGSCN better in 22 of 40 case-seed pairs, worse in 18"."""
  p = paired_difference(a, b, metric, rule)
  if p is None:
    return None
  seeds = (f"; per seed {' / '.join(f'{x:+.1f}' for x in p.per_seed)}"
           if len(p.per_seed) > 1 else "")
  ta, tb = (f"({t})" if " + " in t else t for t in (a.title, b.title))
  return (f"{ta} − {tb}, {metric.label}: {p.mean:+.1f} (95 % CI {p.ci95[0]:+.1f} to "
          f"{p.ci95[1]:+.1f} over cases{seeds}); {ta} better in {p.wins} of {p.n} "
          f"case-seed pairs, worse in {p.losses}")


def table_csv_rows(columns: Sequence[Column], rule: str = "largest_overlap"
                   ) -> tuple[List[Dict[str, Any]], List[str]]:
  """`(rows, header)` of the table for `results.write_csv_rows`.

  One row per metric (`metric` = key, `label`, `unit`), then `seconds_per_image`,
  `total_seconds`, `images`, and `paper.<key>` rows if any column has published numbers;
  per column `<slug>` (mean), `<slug>.std_seeds`, `<slug>.std_images`, `<slug>.n_seeds`.
  """
  cells = [column_cells(c, rule) for c in columns]
  header = ["metric", "label", "unit"]
  for c in columns:
    header += [c.slug, f"{c.slug}.std_seeds", f"{c.slug}.std_images", f"{c.slug}.n_seeds"]
  rows: List[Dict[str, Any]] = []

  def add(key: str, label: str, unit: str, get) -> None:
    row: Dict[str, Any] = {"metric": key, "label": label, "unit": unit}
    for c, cs in zip(columns, cells):
      cell = get(c, cs)
      row.update({c.slug: cell.mean, f"{c.slug}.std_seeds": cell.std_seeds,
                  f"{c.slug}.std_images": cell.std_images, f"{c.slug}.n_seeds": cell.n_seeds})
    rows.append(row)

  for m in METRICS:
    add(m.key, m.label, m.unit, lambda c, cs, k=m.key: cs[k])
  add("seconds_per_image", "seconds per image", "s", lambda c, cs: cs["seconds_per_image"])
  add("total_seconds", "total seconds", "s", lambda c, cs: cs["total_seconds"])
  add("images", "images", "count",
      lambda c, cs: Cell(float(cs["dice"].n_images), math.nan, math.nan, 0, cs["dice"].n_seeds))
  if any(c.paper for c in columns):
    for key, label in PAPER_ROWS:
      add(f"paper.{key}", label, "%", lambda c, cs, k=key: Cell(
          c.paper.get(k, math.nan), math.nan, math.nan, 0, 0))
  return rows, header


def protocols_markdown(columns: Sequence[Column], keys: Sequence[str], title: str,
                       reference: Optional[str] = None) -> str:
  """Methods as rows, DSC under each protocol as columns (mean ± std over seeds), each
  protocol defined under the table; with `reference` (a column slug), the paired DSC
  difference of every other column against it under each mask-free protocol."""
  from sgscn_jax.evaluation import protocols  # the protocol names and definitions
  dsc = METRICS[0]
  head = "| method | " + " | ".join(protocols.PROTOCOL_NAMES[k] for k in keys) + " |"
  lines = [f"### {title}", "", head, "|---|" + "---|" * len(keys)]
  for c in columns:
    cells = [_text(metric_cell(c.summaries, dsc, k)) for k in keys]
    lines.append(f"| {c.title} | " + " | ".join(cells) + " |")
  lines += ["", "Protocols (DSC in %, mean over images; ± std over seeds):", ""]
  lines += [f"- {protocols.PROTOCOL_TEXT[k]}" for k in keys]
  by_slug = {c.slug: c for c in columns}
  if reference in by_slug:
    ref = by_slug[reference]
    lines += ["", f"Paired differences against {ref.title} (mask-free protocols):", ""]
    for key in (k for k in keys if k in protocols.MASK_FREE):
      for c in columns:
        if c.slug != reference:
          text = paired_text(c, ref, dsc, key)
          if text:
            lines.append(f"- {protocols.PROTOCOL_NAMES[key]}: {text}")
  return "\n".join(lines) + "\n"
