r"""Paired differences between two settings of one method, from their run folders: the same
cases and seeds run twice (e.g. with and without `--despeckle`), every protocol.

  python -m studies.paired_folders "median=runs/tables_us_median/sgscn/seed{s}" \
      "none=runs/tables_us/sgscn/seed{s}" --seeds 0,1,2
  python -m studies.paired_folders \
      "held out=runs/cuts/heldout/segA_fitB_s{s},runs/cuts/heldout/segB_fitA_s{s}" \
      "in sample=runs/tables_ph2_cuts/cuts/seed{s}" --seeds 0

Prints, per protocol, the means and `tables.paired_text` of A - B (a bootstrap interval
over cases of the per-case mean over seeds, as the tables print it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sgscn_jax.evaluation import protocols
from sgscn_jax.reporting import tables
from sgscn_jax.running import results


_DSC = tables.METRICS[0]
_DSC_KEYS = [f"{rule}.{_DSC.key}" for rule in protocols.PROTOCOLS]


def column(spec: str, seeds) -> tables.Column:
  """`title=folder pattern with {s}` -> a table column of its finished cases per seed.
  Several patterns joined by commas are one column: their cases together (e.g. the two
  halves of a two-fold split, each run in its own folder)."""
  title, patterns = spec.split("=", 1)
  rows = []
  for s in seeds:
    seed_rows = []
    for pattern in patterns.split(","):
      folder = Path(pattern.format(s=s))
      if not (folder / results.CASES_DIR).is_dir():
        raise SystemExit(f"error: {folder} holds no finished cases")
      seed_rows.extend(results.collect_rows(folder))
    rows.append(seed_rows)
  summaries = [{"metrics": results.summarise(seed_rows, _DSC_KEYS)} for seed_rows in rows]
  return tables.Column(title, title, summaries, {}, rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("a", help="title=folder pattern with {s} for the seed")
  parser.add_argument("b", help="title=folder pattern with {s} for the seed")
  parser.add_argument("--seeds", default="0")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  a, b = column(args.a, seeds), column(args.b, seeds)
  for rule in protocols.PROTOCOLS:
    text = tables.paired_text(a, b, rule=rule)
    if text:
      means = ", ".join(f"{c.title} {_mean_dsc(c, rule):.1f}" for c in (a, b))
      print(f"{protocols.PROTOCOL_NAMES[rule]}: DSC {means}; {text}")


def _mean_dsc(column: tables.Column, rule: str) -> float:
  """Mean over seeds of the mean DSC (%) over each seed's cases (the tables' cell)."""
  return tables.metric_cell(column.summaries, _DSC, rule).mean


if __name__ == "__main__":
  main()
