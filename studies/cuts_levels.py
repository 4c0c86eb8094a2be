"""CUTS on PH2: which mask-free level, and the hard cases (docs/CUTS.md).

    python -m studies.cuts_levels rules runs/tables_ph2_cuts/cuts/seed0
    python -m studies.cuts_levels hard runs/tables_ph2_cuts 0 docs/figures/cuts_ph2_hard_cases.png

`rules`: the object DSC of each level rule over a finished CUTS run folder's `levels/*.npz`
(the run's object step on every level). `hard`: the worst 8 cases of each of CUTS, k-means
k=5 and Otsu (blue) under the object protocol, as a Markdown table and a figure of their
objects. PH2 at ../shared/data/PH2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data import files
from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation import metrics
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.reporting import charts
from sgscn_jax.running import levels as L

PH2 = "../shared/data/PH2"
RUNS = (("cuts", "CUTS"), ("kmeans_k5", "k-means k=5"), ("otsu_blue", "Otsu (blue)"))


def rules(folder: str) -> None:
  cases, load = list_dataset("ph2", PH2)
  config = ObjectConfig(**object_prior("ph2"))
  res = {k: [] for k in ("persistent", "object_stable", "coarsest", "finest",
                         "finest <= 6 clusters", "nearest 5 clusters", "oracle")}
  for case in cases:
    path = Path(folder) / "levels" / f"{case.case_id}.npz"
    if not path.exists():
      continue
    found = dict(np.load(path))
    record = load(case)
    objs = L.level_objects(found, record, config)
    d = [metrics.dice(o, record.mask, record.extra.get("valid")) for o in objs]
    k = found["clusters"]
    small = [i for i in range(len(k)) if k[i] <= 6]
    res["persistent"].append(d[int(np.lexsort((k, -found["persistence"]))[0])])
    res["object_stable"].append(d[L.object_stable_level(objs)])
    res["coarsest"].append(d[0])
    res["finest"].append(d[-1])
    res["finest <= 6 clusters"].append(d[small[-1]] if small else d[0])
    res["nearest 5 clusters"].append(d[int(np.argmin(np.abs(k - 5)))])
    res["oracle"].append(max(d))
  for name, v in res.items():
    print(f"{name:22s} n={len(v)} object DSC {100 * np.mean(v):.1f}  "
          f"cases under 5: {sum(x < 0.05 for x in v)}")


def hard(root: str, seed: str, out_png: str) -> None:
  cases, load = list_dataset("ph2", PH2)
  by_id = {c.case_id: c for c in cases}
  rows = {r: {c.case_id: json.loads((Path(root) / r / f"seed{seed}" / "cases" /
                                     f"{c.case_id}.json").read_text()) for c in cases}
          for r, _ in RUNS}
  worst = set()
  for r, _ in RUNS:
    worst |= set(sorted(rows[r], key=lambda i: rows[r][i]["object.dice"])[:8])
  print("| case | diagnosis | lesion share of image | "
        + " | ".join(t for _, t in RUNS) + " | CUTS oracle level (object) | CUTS levels |")
  print("|---|---|---|" + "---|" * (len(RUNS) + 2))
  grid = []
  for i in sorted(worst, key=lambda i: rows["cuts"][i]["object.dice"]):
    record = load(by_id[i])
    first = rows["cuts"][i]
    print(f"| {i} | {first.get('diagnosis_name', '')} | {100 * record.mask.mean():.0f} % | "
          + " | ".join(f"{100 * rows[r][i]['object.dice']:.1f}" for r, _ in RUNS)
          + f" | {100 * first['oracle_level_object.dice']:.1f} | {first['levels_clusters']} |")
    size = charts.panel_size(record.image.shape, 128)
    panels = [charts.segment_panel(record.image, None, None, height=128),
              charts.mask_panel(charts.nearest(record.mask, size))]
    captions = ["", ""]
    for r, _ in RUNS:
      obj = np.asarray(iio.imread(Path(root) / r / f"seed{seed}" / "objects" / f"{i}.png")) > 0
      panels.append(charts.segment_panel(record.image, obj, record.mask, height=128))
      captions.append(f"DSC {100 * rows[r][i]['object.dice']:.1f}")
    grid.append((i, panels, captions))
  files.write_png(out_png, charts.case_grid(
      ["image", "ground truth"] + [t for _, t in RUNS], grid, panel_height=128,
      footer=f"the mask-free object of each method (seed {seed}); cyan: ground-truth outline"))


if __name__ == "__main__":
  rules(sys.argv[2]) if sys.argv[1] == "rules" else hard(*sys.argv[2:5])
