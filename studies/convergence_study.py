r"""Issue 15 measured from finished runs: stopping rules, schedules and seed consensus.

  python -m studies.convergence_study ph2 ../shared/data/PH2 \
      --configs "flat=runs/tables_ph2/sgscn/seed{s}" "either=runs/ph2_either_s{s}" \
      --consensus "either=runs/ph2_either_s{s}" "either, 4 seeds=runs/ph2_either_e4_s{s}" \
      --seeds 0,1,2

Each `--configs` entry is `title=path` with `{s}` standing for the seed; the first is the
reference. Prints Markdown:

1. Per configuration: cases, mean iterations, stop reasons, seconds per image as the runs
   recorded them (compilation and loading included; only runs made under the same load
   compare), mean DSC under `paper` and `object`, and the paired difference to the
   reference (mean over seeds of a - b per case, 95 % bootstrap interval over cases,
   `reporting.tables.paired_difference`).
2. `--consensus single=... fused=...`: for each case, the sample standard deviation of its
   DSC across the seeds (independent runs), averaged over cases, for single runs and for
   consensus runs, with the paired difference of the spreads (interval over cases).
3. For the consensus runs, agreement against errors: the pixels of low agreement (some seed
   disagrees, agreement < 1) and of full agreement; the share of each that is wrong under
   `paper` (the largest-overlap cluster) and under `object`, and the share of all errors
   that lies in low-agreement pixels against the share of pixels that is low-agreement;
   where the seeds' objects were voted (`object_share/`), also with the objects' agreement
   (low: some seed's object disagrees with the vote).
4. `--vote_sizes title=path{s}` (consensus runs that kept `seed_labels/`): every run's seeds
   of a case are pooled as independent single runs, regrouped into disjoint groups of E, and
   each group's object voted as the runner does; the spread across groups against E.

Only reads run folders (cases/*.json, labels/, objects/, uncertainty/, object_share/)
and the masks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data.datasets import list_dataset
from sgscn_jax.evaluation import selection
from sgscn_jax.reporting import tables

PROTOCOLS = (("paper", "largest_overlap"), ("object", "object"))


def read_rows(run: Path) -> List[Dict]:
  rows = []
  for path in sorted((run / "cases").glob("*.json")):
    if not path.name.startswith("."):
      rows.append(json.loads(path.read_text()))
  return rows


def _value(row, key) -> float:
  v = row.get(key)
  return float("nan") if v is None else float(v)


def _runs(spec: str, seeds) -> tuple:
  title, _, pattern = spec.partition("=")
  return title, [Path(pattern.format(s=s)) for s in seeds]


def _common(row_sets) -> List[str]:
  """Case ids present in every run of every configuration."""
  return sorted(set.intersection(*({r["case_id"] for r in rows} for rows in row_sets)))


def config_table(configs, seeds) -> str:
  runs = {title: [read_rows(p) for p in paths] for title, paths in
          (_runs(c, seeds) for c in configs)}
  ids = set(_common([rows for per_seed in runs.values() for rows in per_seed]))
  lines = [f"{len(ids)} cases present in every run, seeds {','.join(map(str, seeds))}.", "",
           "| configuration | iterations | stop reasons | s / image (recorded) | DSC paper | "
           "DSC object | paper − ref | object − ref |", "|---|---|---|---|---|---|---|---|"]
  columns = {}
  for title, per_seed in runs.items():
    rows = [[r for r in rs if r["case_id"] in ids] for rs in per_seed]
    columns[title] = tables.Column(title, title, (), {}, rows)
  ref_title = next(iter(runs))
  for title, column in columns.items():
    flat = [r for rs in column.rows for r in rs]
    reasons: Dict[str, int] = {}
    for r in flat:
      reasons[r.get("stop_reason", "?")] = reasons.get(r.get("stop_reason", "?"), 0) + 1
    cells = [title, f"{np.mean([_value(r, 'iterations') for r in flat]):.1f}",
             ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
             f"{np.mean([_value(r, 'seconds') for r in flat]):.1f}"]
    for _, rule in PROTOCOLS:
      cells.append(f"{100 * np.nanmean([_value(r, f'{rule}.dice') for r in flat]):.1f}")
    for _, rule in PROTOCOLS:
      if title == ref_title:
        cells.append("")
        continue
      p = tables.paired_difference(column, columns[ref_title], tables.METRICS[0], rule)
      cells.append(f"{p.mean:+.1f} ({p.ci95[0]:+.1f} to {p.ci95[1]:+.1f})")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def spread_table(pair, seeds) -> str:
  (t1, p1), (t2, p2) = (_runs(c, seeds) for c in pair)
  r1, r2 = [read_rows(p) for p in p1], [read_rows(p) for p in p2]
  ids = _common(r1 + r2)
  lines = [f"{len(ids)} cases in all {2 * len(seeds)} runs.", "",
           "| answer | protocol | mean DSC | mean over cases of the DSC's std across seeds |",
           "|---|---|---|---|"]
  findings = []
  for name, rule in PROTOCOLS:
    spreads, means = {}, {}
    for title, runs in ((t1, r1), (t2, r2)):
      by_id = [{r["case_id"]: _value(r, f"{rule}.dice") for r in rs} for rs in runs]
      values = np.array([[b[i] for b in by_id] for i in ids]) * 100   # [N, S]
      spreads[title] = values.std(axis=1, ddof=1)
      means[title] = values.mean()
      lines.append(f"| {title} | {name} | {means[title]:.1f} | {spreads[title].mean():.2f} |")
    d = spreads[t2] - spreads[t1]
    boot = np.random.default_rng(0).integers(0, len(ids), (2000, len(ids)))
    lo, hi = np.percentile(d[boot].mean(axis=1), [2.5, 97.5])
    ratio = spreads[t2].mean() / spreads[t1].mean()
    findings.append(f"- {name}: spread {t2} / {t1} = {ratio:.2f}; difference "
                    f"{d.mean():+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f} over cases); "
                    f"mean DSC {means[t2] - means[t1]:+.1f}")
  return "\n".join(lines + [""] + findings)


def agreement_table(fused, seeds, cases, load) -> str:
  """Error rates in the pixels of full and of low agreement. Two maps: the label map's
  (`uncertainty/`: some seed's aligned cluster differs) and, where the seeds' objects were
  voted (`object_share/`), the object's (some seed's object disagrees with the vote)."""
  _, paths = _runs(fused, seeds)
  by_id = {c.case_id: c for c in cases}
  counts: Dict[tuple, np.ndarray] = {}   # (protocol, map) -> [low?, wrong?]
  n = 0
  for path in paths:
    for row in read_rows(path):
      case = by_id.get(row["case_id"])
      agreement_png = path / "uncertainty" / f"{row['case_id']}.png"
      if case is None or not agreement_png.exists():
        continue
      record = load(case)
      if record.mask is None:
        continue
      truth = np.asarray(record.mask, bool)
      lows = {"labels": np.asarray(iio.imread(agreement_png)) < 255}
      share_png = path / "object_share" / f"{row['case_id']}.png"
      if share_png.exists():
        share = np.asarray(iio.imread(share_png))
        lows["objects"] = (share > 0) & (share < 255)
      labels = np.asarray(iio.imread(path / "labels" / f"{row['case_id']}.png")).astype(np.int64)
      answers = {"paper": selection.select(labels, "largest_overlap", truth),
                 "object": np.asarray(iio.imread(path / "objects" / f"{row['case_id']}.png")) > 0}
      for name, answer in answers.items():
        wrong = np.asarray(answer, bool) != truth
        for map_name, low in lows.items():
          c = counts.setdefault((name, map_name), np.zeros((2, 2), np.int64))
          for a in (0, 1):
            for w in (0, 1):
              c[a, w] += int(np.sum((low == a) & (wrong == w)))
      n += 1
  lines = [f"{n} case-seed pairs (pixels at the image's resolution).", "",
           "| protocol | agreement of | error rate, full agreement | error rate, low agreement | "
           "share of pixels low | share of errors low |", "|---|---|---|---|---|---|"]
  for (name, map_name), c in sorted(counts.items(), key=lambda kv: (kv[0][0] != "paper", kv[0])):
    rate = lambda a: c[a, 1] / max(c[a].sum(), 1)  # noqa: E731
    share_pixels = c[1].sum() / max(c.sum(), 1)
    share_errors = c[1, 1] / max(c[:, 1].sum(), 1)
    lines.append(f"| {name} | {map_name} | {100 * rate(0):.1f} % | {100 * rate(1):.1f} % | "
                 f"{100 * share_pixels:.1f} % | {100 * share_errors:.1f} % |")
  return "\n".join(lines)


def vote_size_table(spec, seeds, cases, load, dataset, sizes=(1, 2, 3, 4, 6),
                    partitions=10) -> str:
  """Spread of the objects' vote against the number of seeds E, from the seed maps that
  consensus runs keep (`seed_labels/`): per case, the members of all the given runs are
  independent single runs; they are split at random into disjoint groups of E, each group's
  object is voted exactly as the runner does (`scoring.voted_object`, ties to the object of
  the group's label consensus; E = 1: the member's own object), and the spread is the mean
  over pairs of groups of |DSC_a - DSC_b| / sqrt(2) (the sample std of two independent
  runs, the statistic of `spread_table`), averaged over `partitions` random splits and then
  over cases. Also checks that voting the 4 members of a run again gives its saved object."""
  from sgscn_jax.data.datasets import object_prior
  from sgscn_jax.evaluation import consensus as consensus_lib, metrics
  from sgscn_jax.evaluation.objects import ObjectConfig, config_tag
  from sgscn_jax.running import case_files, scoring
  _, paths = _runs(spec, seeds)
  config = ObjectConfig(**object_prior(dataset))
  rng = np.random.default_rng(0)
  spreads = {e: [] for e in sizes}
  means = {e: [] for e in sizes}
  checked = matched = 0
  for case in cases:
    record = load(case)
    if record.mask is None:
      continue
    members = []
    for path in paths:
      row = next((r for r in read_rows(path) if r["case_id"] == case.case_id), None)
      own = case_files.saved_seed_members(path, case.case_id)
      if row is None or own is None:
        continue
      if row.get("object_config") != config_tag(config):
        raise SystemExit(f"{path}: objects found with {row.get('object_config')!r}, "
                         f"not the data set's default {config_tag(config)!r}")
      members += own
      # The runner's object of this run, found again from its members.
      fused = consensus_lib.consensus(np.stack(own)).labels
      again = scoring.voted_object(fused, own, record, config)[0].mask
      saved = np.asarray(iio.imread(path / "objects" / f"{case.case_id}.png")) > 0
      checked += 1
      gap = metrics.dice(again, record.mask) - metrics.dice(saved, record.mask)
      matched += int(abs(gap) < 5e-3)
    if not members:
      continue
    objs = [scoring.find_object(m, record, config).mask for m in members]
    score = lambda mask: 100 * metrics.dice(mask, record.mask, record.extra.get("valid"))  # noqa: E731
    cache = {}

    def voted(group):   # a group's DSC, computed once per distinct group
      if group not in cache:
        if len(group) == 1:
          mask = objs[group[0]]
        else:
          tie = None
          if len(group) % 2 == 0:
            fused = consensus_lib.consensus(np.stack([members[i] for i in group])).labels
            tie = scoring.find_object(fused, record, config).mask
          mask = consensus_lib.vote_objects(np.stack([objs[i] for i in group]), tie=tie).mask
        cache[group] = score(mask)
      return cache[group]

    for e in sizes:
      if len(members) < 2 * e:
        continue
      per_split, per_split_mean = [], []
      for _ in range(partitions):
        order = rng.permutation(len(members))
        groups = [order[i * e:(i + 1) * e] for i in range(len(members) // e)]
        values = [voted(tuple(sorted(g))) for g in groups]
        pairs = [abs(a - b) / np.sqrt(2) for i, a in enumerate(values) for b in values[i + 1:]]
        per_split.append(np.mean(pairs))
        per_split_mean.append(np.mean(values))
      spreads[e].append(np.mean(per_split))
      means[e].append(np.mean(per_split_mean))
  lines = [f"Members: {len(paths)} runs x their seeds per case; {checked} run-cases voted "
           f"again, {matched} give the saved object's DSC (within 0.5 points; the runner fuses "
           f"at the working size, this at the image's).", "",
           "| seeds voted (E) | cases | mean DSC object | spread (mean over pairs of disjoint "
           "groups of abs(a - b) / sqrt 2) | ratio to E = 1 |", "|---|---|---|---|---|"]
  base = np.mean(spreads[1]) if spreads.get(1) else float("nan")
  for e in sizes:
    if spreads[e]:
      lines.append(f"| {e} | {len(spreads[e])} | {np.mean(means[e]):.1f} | "
                   f"{np.mean(spreads[e]):.2f} | {np.mean(spreads[e]) / base:.2f} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dataset")
  parser.add_argument("data_dir")
  parser.add_argument("--configs", nargs="*", default=[])
  parser.add_argument("--consensus", nargs="*", default=[])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--vote_sizes", default=None,
                      help="a consensus run pattern (title=path{s}) whose seed_labels/ are "
                           "regrouped: spread of the objects' vote against E")
  parser.add_argument("--vote_group_sizes", default="1,2,3,4,6",
                      help="the group sizes E of --vote_sizes")
  parser.add_argument("--partitions", type=int, default=10,
                      help="random splits into disjoint groups per case (--vote_sizes)")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  if args.configs:
    print("## Configurations\n\n" + config_table(args.configs, seeds) + "\n")
  if args.consensus:
    if len(args.consensus) != 2:
      raise SystemExit("--consensus takes two entries: single=... fused=...")
    print("## Spread across seeds\n\n" + spread_table(args.consensus, seeds) + "\n")
    cases, load = list_dataset(args.dataset, args.data_dir)
    print("## Agreement against errors\n\n"
          + agreement_table(args.consensus[1], seeds, cases, load) + "\n")
  if args.vote_sizes:
    cases, load = list_dataset(args.dataset, args.data_dir)
    print("## The objects' vote against the number of seeds\n\n"
          + vote_size_table(args.vote_sizes, seeds, cases, load, args.dataset,
                            sizes=tuple(int(e) for e in args.vote_group_sizes.split(",")),
                            partitions=args.partitions) + "\n")


if __name__ == "__main__":
  main()
