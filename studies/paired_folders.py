r"""Paired differences between two settings of one method, from their run folders: the same
cases and seeds run twice (e.g. with and without `--despeckle`), every protocol.

  python -m studies.paired_folders "median=runs/tables_us_median/sgscn/seed{s}" \
      "none=runs/tables_us/sgscn/seed{s}" --seeds 0,1,2

Prints, per protocol, the means and `tables.paired_text` of A - B (a bootstrap interval
over cases of the per-case mean over seeds, as the tables print it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sgscn_jax.evaluation import protocols
from sgscn_jax.reporting import tables
from sgscn_jax.running import results


def column(spec: str, seeds) -> tables.Column:
  """`title=folder pattern with {s}` -> a table column of its finished cases per seed."""
  title, pattern = spec.split("=", 1)
  rows = []
  for s in seeds:
    folder = Path(pattern.format(s=s))
    if not (folder / results.CASES_DIR).is_dir():
      raise SystemExit(f"error: {folder} holds no finished cases")
    rows.append(results.collect_rows(folder))
  return tables.Column(title, title, [{} for _ in seeds], {}, rows)


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
      print(f"{protocols.PROTOCOL_NAMES[rule]}: {text}")


if __name__ == "__main__":
  main()
