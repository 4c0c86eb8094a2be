r"""Paired differences between two settings of one method, from their run folders: the same
cases and seeds run twice (e.g. with and without `--despeckle`), every protocol.

  python -m studies.paired_folders "median=runs/tables_us_median/sgscn/seed{s}" \
      "none=runs/tables_us/sgscn/seed{s}" --seeds 0,1,2
  python -m studies.paired_folders \
      "held out=runs/cuts/heldout/segA_fitB_s{s},runs/cuts/heldout/segB_fitA_s{s}" \
      "in sample=runs/tables_ph2_cuts/cuts/seed{s}" --seeds 0

Prints, per protocol, the means and `tables.paired_text` of A - B (a bootstrap interval
over cases of the per-case mean over seeds, as the tables print it). With `--cases N`, then
the N cases whose difference under `--rule` (default object) is largest in size, each with
its DSC in A and B (means over seeds), its number of labels left in A, and the share of the
summed difference they carry: where a gap between two methods comes from.

With `--vote DATASET DATA_DIR`, then the seeds' saved objects (`objects/<case>.png`) voted
per case, for A and for B: object_vote(p) = [sum_s object_s(p) > S / 2]
(`consensus.vote_objects`, an odd number of seeds, no tie), scored against the data set's
masks; prints each side's voted DSC against its single-seed mean and the paired difference
of the two votes (one answer per case from S seeds' work on each side; the S3-Net and SGSCN
folders are `records/ph2_s3net.tar.gz` unpacked into runs/tables_ph2_s3net, records/README.md):

  python -m studies.paired_folders "S3-Net=runs/tables_ph2_s3net/s3net/seed{s}" \
      "SGSCN=runs/tables_ph2_s3net/sgscn/seed{s}" --seeds 0,1,2 \
      --vote ph2 ../shared/data/PH2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data.datasets import list_dataset
from sgscn_jax.evaluation import consensus, metrics, protocols
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


def case_differences(a: tables.Column, b: tables.Column, rule: str
                     ) -> List[Tuple[str, float, float]]:
  """`[(case id, DSC of A, DSC of B)]` in %, each the mean over seeds, for the cases the
  paired difference compares (`tables.paired_values`); largest |A - B| first."""
  paired = tables.paired_values(a, b, _DSC, rule)
  if paired is None:
    return []
  ids, va, vb = paired
  out = [(case, float(x), float(y)) for case, x, y in zip(ids, va.mean(0), vb.mean(0))]
  return sorted(out, key=lambda t: (-abs(t[1] - t[2]), t[0]))


def _labels_left(column: tables.Column) -> Dict[str, float]:
  counts: Dict[str, List[float]] = {}
  for rows in column.rows:
    for r in rows:
      if r.get("n_labels") is not None:
        counts.setdefault(r["case_id"], []).append(r["n_labels"])
  return {case: float(np.mean(v)) for case, v in counts.items()}


def print_cases(a: tables.Column, b: tables.Column, rule: str, n: int) -> None:
  diffs = case_differences(a, b, rule)
  total = sum(x - y for _, x, y in diffs)
  labels = _labels_left(a)
  shown = diffs[:n]
  part = sum(x - y for _, x, y in shown)
  share = f"{100 * part / total:.0f} %" if total else "n/a"
  print(f"{protocols.PROTOCOL_NAMES[rule]}: the {len(shown)} largest of {len(diffs)} paired "
        f"differences ({a.title} - {b.title}) sum to {part:+.1f} of {total:+.1f} ({share}):")
  for case, x, y in shown:
    left = f", {labels[case]:.1f} labels left in {a.title}" if case in labels else ""
    print(f"  {case}: {a.title} {x:.1f}, {b.title} {y:.1f}, {x - y:+.1f}{left}")


def voted_column(title: str, spec: str, seeds, cases, load) -> Tuple[tables.Column, int]:
  """The column of one "seed" whose rows hold `object.dice` of the per-case vote of the
  folders' saved objects over `seeds` (cases with an object in every seed), and how many
  single-seed objects, scored again here, matched their row's `object.dice` (within 1e-6)."""
  if len(seeds) % 2 == 0:
    raise SystemExit("error: --vote needs an odd number of seeds (a majority without ties)")
  single = column(spec, seeds)
  stored = [{r["case_id"]: r.get(f"object.{_DSC.key}") for r in rows} for rows in single.rows]
  folders = [[Path(p.format(s=s)) for p in spec.split("=", 1)[1].split(",")] for s in seeds]
  rows, matched = [], 0
  for case in cases:
    paths = []
    for seed_folders in folders:
      found = [f / "objects" / f"{case.case_id}.png" for f in seed_folders]
      found = [f for f in found if f.exists()]
      paths.append(found[0] if found else None)
    if any(p is None for p in paths):
      continue
    record = load(case)
    if record.mask is None:
      continue
    valid = record.extra.get("valid")
    masks = np.stack([np.asarray(iio.imread(p)) > 0 for p in paths])
    for s, mask in enumerate(masks):
      value = stored[s].get(case.case_id)
      again = metrics.dice(mask, record.mask, valid)
      matched += int(value is not None and abs(again - value) < 1e-6)
    vote = consensus.vote_objects(masks).mask
    rows.append({"case_id": case.case_id,
                 f"object.{_DSC.key}": metrics.dice(vote, record.mask, valid)})
  summaries = [{"metrics": results.summarise(rows, _DSC_KEYS)}]
  return tables.Column(title, title, summaries, {}, [rows]), matched


def print_votes(a_spec: str, b_spec: str, seeds, dataset: str, data_dir: str) -> None:
  cases, load = list_dataset(dataset, data_dir)
  voted = []
  for spec in (a_spec, b_spec):
    title = spec.split("=", 1)[0]
    col, matched = voted_column(f"{title} (vote of {len(seeds)})", spec, seeds, cases, load)
    n = len(col.rows[0])
    print(f"{title}: object of one seed {_mean_dsc(column(spec, seeds), 'object'):.1f}, "
          f"vote of seeds {','.join(map(str, seeds))} {_mean_dsc(col, 'object'):.1f} over {n} "
          f"cases ({matched} of {n * len(seeds)} single objects scored again match their rows)")
    voted.append(col)
  text = tables.paired_text(voted[0], voted[1], rule="object")
  if text:
    print(f"object, votes: {text}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("a", help="title=folder pattern with {s} for the seed")
  parser.add_argument("b", help="title=folder pattern with {s} for the seed")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--cases", type=int, default=0,
                      help="then list the N cases with the largest |A - B|")
  parser.add_argument("--rule", default="object", choices=sorted(protocols.PROTOCOLS),
                      help="the protocol of --cases")
  parser.add_argument("--vote", nargs=2, metavar=("DATASET", "DATA_DIR"),
                      help="then vote each side's saved objects over the seeds and compare")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  a, b = column(args.a, seeds), column(args.b, seeds)
  for rule in protocols.PROTOCOLS:
    text = tables.paired_text(a, b, rule=rule)
    if text:
      means = ", ".join(f"{c.title} {_mean_dsc(c, rule):.1f}" for c in (a, b))
      print(f"{protocols.PROTOCOL_NAMES[rule]}: DSC {means}; {text}")
  if args.cases:
    print_cases(a, b, args.rule, args.cases)
  if args.vote:
    print_votes(args.a, args.b, seeds, *args.vote)


def _mean_dsc(column: tables.Column, rule: str) -> float:
  """Mean over seeds of the mean DSC (%) over each seed's cases (the tables' cell)."""
  return tables.metric_cell(column.summaries, _DSC, rule).mean


if __name__ == "__main__":
  main()
