r"""Issue 14's protocol question as one table: how far `gt_clipped` moves each method's DSC.

  python -m experiments.reproduce_tables ... --gt_clipped 1     # adds the INFLATED tables
  python -m studies.inflation runs/tables_lung

Reads a tables folder's `table1.csv` (paper), `table1_gt_clipped_INFLATED.csv` (the paper
cluster multiplied by the dilated ground truth) and `table1_object.csv` (the mask-free
object), and prints, per method, the mean DSC under each (means over seeds, as the tables)
and the inflation gt_clipped - paper, in Markdown.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict


def dice_row(path: Path) -> Dict[str, float]:
  """{method slug: mean DSC} from a Table 1 CSV (its `dice` row; no `.std_*` columns)."""
  with path.open() as f:
    row = next(r for r in csv.DictReader(f) if r["metric"] == "dice")
  return {k: float(v) for k, v in row.items()
          if k not in ("metric", "label", "unit") and "." not in k and v}


def inflation_table(folder: Path) -> str:
  paper = dice_row(folder / "table1.csv")
  clipped = dice_row(folder / "table1_gt_clipped_INFLATED.csv")
  found = dice_row(folder / "table1_object.csv") if (folder / "table1_object.csv").exists() else {}
  lines = ["| method | paper | gt_clipped (INFLATED) | inflation | object (no mask) |",
           "|---|---|---|---|---|"]
  for method, value in clipped.items():
    obj = f"{found[method]:.1f}" if method in found else ""
    lines.append(f"| {method} | {paper[method]:.1f} | {value:.1f} | {value - paper[method]:+.1f} "
                 f"| {obj} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("tables_dir", type=Path)
  print(inflation_table(parser.parse_args().tables_dir))


if __name__ == "__main__":
  main()
