r"""Two folds of a PH2 tree, for fitting a data-set method on one half and segmenting the
other (docs/DISTIL.md, "Fitted on one half"): the cases sorted by id, fold A every other
case from the first, fold B the rest; each fold a PH2 tree of symbolic links (the case
folders and the diagnosis table), read with `--dataset ph2 --data_dir <fold>`.

  python -m studies.distil_folds ../shared/data/PH2 runs/distil/ph2_folds
  # -> runs/distil/ph2_folds/A, runs/distil/ph2_folds/B (20 cases each on the shared 40)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sgscn_jax.data.datasets import list_dataset
from sgscn_jax.data.datasets import ph2


def make_folds(data_dir: str, out: str) -> dict:
  """Writes the two folds under `out` (A and B); returns `{fold: [case ids]}`."""
  cases, _ = list_dataset("ph2", data_dir)
  ids = sorted(c.case_id for c in cases)
  source = Path(data_dir).resolve()
  images = source / ph2.IMAGES_FOLDER if (source / ph2.IMAGES_FOLDER).is_dir() else source
  folds = {"A": ids[0::2], "B": ids[1::2]}
  for name, members in folds.items():
    tree = Path(out) / name / ph2.IMAGES_FOLDER
    tree.mkdir(parents=True, exist_ok=True)
    for case_id in members:
      link = tree / case_id
      if not link.exists():
        os.symlink(images / case_id, link)
    table = images.parent / ph2.TABLE
    if table.exists() and not (Path(out) / name / ph2.TABLE).exists():
      os.symlink(table, Path(out) / name / ph2.TABLE)
  return folds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("data_dir")
  parser.add_argument("out")
  args = parser.parse_args()
  for name, members in make_folds(args.data_dir, args.out).items():
    print(f"{name}: {len(members)} cases ({members[0]} ... {members[-1]})")


if __name__ == "__main__":
  main()
