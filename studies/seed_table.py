r"""A Markdown table of every method folder under a `reproduce_tables` output folder, from
the seeds finished so far (a seed counts once every case of it is in its `results.csv`),
while the rest still runs: the mean over cases per seed, then the mean over those seeds
(and the standard deviation over seeds when there are several), per protocol.

  python -m studies.seed_table runs/us43_busi --cases 60
  python -m studies.seed_table runs/us43_bus_uc --cases 20 --methods kmeans_k5,sgscn

`reproduce_tables` writes the same table (stamped) once every seed has run; this reads the
same files and prints the part that exists, naming the seeds each row rests on.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

PROTOCOLS = (("paper", "largest_overlap.dice"), ("paper+fill", "paper_fill.dice"),
             ("object", "object.dice"), ("central", "central.dice"))


def seed_means(results: Path, cases: int):
  """`{protocol: mean DSC %}` of one seed's `results.csv`, or None if unfinished."""
  if not results.exists():
    return None
  rows = list(csv.DictReader(results.open()))
  if len(rows) < cases:
    return None
  return {name: 100 * float(np.mean([float(r[key]) for r in rows if r.get(key)]))
          for name, key in PROTOCOLS if any(r.get(key) for r in rows)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("root")
  parser.add_argument("--cases", type=int, required=True, help="cases in a finished seed")
  parser.add_argument("--methods", default="", help="method folders, comma-separated (all)")
  args = parser.parse_args()
  root = Path(args.root)
  names = ([m for m in args.methods.split(",") if m] or
           sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("seed*"))))
  print("| method | seeds | " + " | ".join(p for p, _ in PROTOCOLS) + " |")
  print("|---|---|" + "---|" * len(PROTOCOLS))
  for name in names:
    per_seed = {}
    for folder in sorted((root / name).glob("seed*")):
      means = seed_means(folder / "results.csv", args.cases)
      if means:
        per_seed[int(folder.name[4:])] = means
    if not per_seed:
      continue
    cells = []
    for protocol, _ in PROTOCOLS:
      values = [m[protocol] for m in per_seed.values() if protocol in m]
      if not values:
        cells.append("")
      elif len(values) == 1:
        cells.append(f"{values[0]:.1f}")
      else:
        cells.append(f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}")
    seeds = ",".join(str(s) for s in sorted(per_seed))
    print(f"| {name} | {seeds} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
