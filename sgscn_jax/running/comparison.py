"""The paper's comparison on a data set: every method, one protocol, one scoring code.

    parse_methods(text)      ->  method specs (`registry.parse_methods`: kmeans:5, vote:A+B)
    plan(specs, ablation)    ->  runs: (slug, title, spec, config)
    run_all: each (run, seed) is `image_runs.run_dataset` of the run's registered method
             into `<out>/<slug>/seed<s>/` (resumable; scored there with every protocol)
    write_outputs: the runs' summaries -> table1.{md,csv}, table1_central.{md,csv},
             ablation.{md,csv,png}, ablation_central.{md,csv}, cases.png, run_log.{csv,json}

The SGSCN ablation (the paper's Figure 3) is three `Config.with_weights` variants of one
SGSCN configuration: L_ce alone (`sgscn_ce`), L_ce + L_ss (`sgscn_ce_ss`, the published
loss) and L_ce + L_ss + L_cc (`sgscn`, our default, which is also Table 1's SGSCN
column: it runs once). S3-Net's ablation (`ablation_of="s3net"`, the poster's table) is four
variants of S3-Net's preset: L_ce (`s3net_ce`), L_ce + L_S (`s3net_ce_s`), L_ce + L_AT
(`s3net_ce_at`) and all three (`s3net`). Each variant is compared with every variant that has
exactly one loss fewer. A folder that already holds a run of another configuration is
an error (resuming it would mix two protocols).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from sgscn_jax import registry
from sgscn_jax.baselines import method_vote
from sgscn_jax.core.config import Config
from sgscn_jax.data import files
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.evaluation import protocols
from sgscn_jax.reporting import figures, tables
from sgscn_jax.reporting.figures import cases_figure, pick_cases  # noqa: F401 - also from here
from sgscn_jax.running import distributed, folder, results
from sgscn_jax.running import images as image_runs

DEFAULT_METHODS = ("sgscn", "deepcluster", "iic", "kmeans:3", "kmeans:4", "kmeans:5", "kmeans:6",
                   "kmeans:2", "otsu", "otsu_blue", "chan_vese")
SGSCN = "sgscn"
# (slug, weights changed from the SGSCN configuration): Figure 3's three losses.
ABLATION = (("sgscn_ce", {"sparse_spatial": 0.0, "context_consistency": 0.0}),
            ("sgscn_ce_ss", {"context_consistency": 0.0}),
            (SGSCN, {}))
S3NET = "s3net"
# S3-Net's (the poster's table): L_ce; + L_S; + L_AT; all three.
S3NET_ABLATION = (("s3net_ce", {"edge_aware_spatial": 0.0, "transform_consistency_kl": 0.0}),
                  ("s3net_ce_s", {"transform_consistency_kl": 0.0}),
                  ("s3net_ce_at", {"edge_aware_spatial": 0.0}),
                  (S3NET, {}))
ABLATIONS = {SGSCN: ABLATION, S3NET: S3NET_ABLATION}
ABLATION_TITLES = {SGSCN: "Ablation (Figure 3): SGSCN's losses",
                   S3NET: "Ablation (the poster's table): S3-Net's losses"}
LOG_COLUMNS = ("run", "method", "seed", "cases", "finished", "failed", "resumed", "wall_seconds",
               "seconds_per_image")
# XLA:CPU at backend optimisation level 0: about half the compile time, slower code.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


class Run(NamedTuple):
  slug: str                  # folder and CSV name, e.g. "kmeans_k3" (`MethodSpec.slug`)
  title: str                 # column name, e.g. "k-means k=3" (`MethodSpec.title`)
  spec: registry.MethodSpec  # the method as named, e.g. `kmeans:3`
  config: Any                # the method's config for this run (a vote's `VoteConfig`)

  @property
  def method(self) -> registry.Method:
    """The registered method the run is handed to (`image_runs.run_dataset`)."""
    return self.spec.method

  @property
  def name(self) -> str:
    """The registered method's name, e.g. "kmeans"."""
    return self.spec.name

  @property
  def k(self) -> Optional[int]:
    """The clusters asked of a method that takes them (for the paper's figures), else None."""
    return self.config.k if self.method.takes_k else None


class TablePlan(NamedTuple):
  table: List[Run]     # Table 1's columns, in order
  ablation: List[Run]  # the three SGSCN loss variants (empty without the ablation)

  @property
  def runs(self) -> List[Run]:
    """Every distinct run, each once (the full SGSCN run serves both tables)."""
    seen: Dict[str, Run] = {}
    for run in self.table + self.ablation:
      seen.setdefault(run.slug, run)
    return list(seen.values())


def default_configs() -> Dict[str, Any]:
  """Each registered method's configuration for a full run."""
  return {name: registry.get_method(name).default_config for name in registry.method_names()}


def quick_configs() -> Dict[str, Any]:
  """Each registered method's tiny settings for tests and smoke runs: seconds, not results."""
  return {name: registry.get_method(name).quick_config for name in registry.method_names()}


def parse_methods(text: str | Sequence[str]) -> List[registry.MethodSpec]:
  """`"sgscn,iic,kmeans:3,vote:kmeans:5+otsu_blue"` -> their `registry.MethodSpec`s (the
  registry's grammar, `registry.parse_methods`).

  Raises:
    registry.MethodSpecError: a bad spec, or one named twice (one line).
  """
  return registry.parse_methods(text)


def _weights_title(config: Config) -> str:
  names = {"cross_entropy": "L_ce", "sparse_spatial": "L_ss", "context_consistency": "L_cc",
           "edge_aware_spatial": "L_S", "transform_consistency_kl": "L_AT",
           "transform_consistency_ce": "L_AT (ce)"}
  parts = [f"{w:g} {names.get(n, n)}" if w != 1 else names.get(n, n)
           for n, w in config.active_terms]
  return " + ".join(parts) if parts else "no loss"


def plan(methods: Sequence[registry.MethodSpec], ablation: bool, configs: Mapping[str, Any],
         ablation_of: str = SGSCN) -> TablePlan:
  """The runs of Table 1 (`methods` from `parse_methods`, each with `spec.config(configs)`:
  the run's config of that method with the fields the spec sets) and of the ablation of
  `ablation_of`'s losses (`ABLATIONS`: sgscn or s3net)."""
  table = [Run(spec.slug, spec.title, spec, spec.config(configs)) for spec in methods]
  variants = []
  if ablation:
    if ablation_of not in ABLATIONS:
      raise ValueError(f"no loss ablation for {ablation_of!r}; choose from "
                       f"{', '.join(ABLATIONS)}")
    for slug, weights in ABLATIONS[ablation_of]:
      config = configs[ablation_of].with_weights(**weights)
      variants.append(Run(slug, _weights_title(config), registry.MethodSpec(ablation_of),
                          config))
  return TablePlan(table, variants)


def ablation_pairs(runs: Sequence[Run], columns: Sequence[Any]) -> List[tuple]:
  """(column, column with exactly one loss fewer) for every such pair of ablation runs, in
  run order: SGSCN's (ce_ss, ce), (full, ce_ss); S3-Net's (ce_s, ce), (ce_at, ce),
  (full, ce_s), (full, ce_at)."""
  terms = [frozenset(name for name, _ in run.config.active_terms) for run in runs]
  return [(columns[j], columns[i]) for j in range(len(runs)) for i in range(j)
          if terms[i] < terms[j] and len(terms[j] - terms[i]) == 1]


def run_options(options: image_runs.RunOptions, root: Path, run: Run, seed: int,
                 standardise_of: Optional[Callable[[str], bool]] = None
                 ) -> image_runs.RunOptions:
  """The options of one (run, seed): its folder `root/<slug>/seed<s>`, seed and name, and
  `standardise_of(run.name)` where given (a data set's per-method default, e.g. lung CT
  standardises S3-Net's input: `datasets.standardise_prior`)."""
  standardise = options.standardise if standardise_of is None else standardise_of(run.name)
  return dataclasses.replace(options, out_dir=str(root / run.slug / f"seed{seed}"), seed=seed,
                             method_name=run.slug, standardise=standardise)


def _same_settings(config: Any, options: image_runs.RunOptions, dataset: Optional[str]) -> None:
  """Raises `folder.RunFolderError` if `options.out_dir` holds finished cases of other result
  settings (`folder.check_settings`; with `options.overwrite` the run itself recomputes
  them)."""
  if options.overwrite:
    return
  out = Path(options.out_dir)
  folder.check_settings(out, folder.settings_of(config, options, dataset), type(config),
                        type(options), has_results=any((out / results.CASES_DIR).glob("*.json")))


def run_all(plan_: TablePlan, seeds: Sequence[int], cases: Sequence[Case],
            load: Callable[[Case], Record], options: image_runs.RunOptions, *,
            compiler_options: Optional[Mapping[str, Any]] = None,
            call_kwargs: Optional[Mapping[str, Any]] = None,
            run_info: Optional[Dict[str, Any]] = None,
            standardise_of: Optional[Callable[[str], bool]] = None,
            team: Optional[distributed.Team] = None
            ) -> tuple[Dict[str, List[image_runs.RunResult]], List[Dict[str, Any]]]:
  """Runs every (run, seed) of `plan_` into `options.out_dir/<slug>/seed<s>`: the run's
  registered method (`run.method`) with its config, through `image_runs.run_dataset` with
  `compiler_options` (e.g. `FAST_COMPILE` for a quick run) and `call_kwargs`.

  `standardise_of(method name)`, where given, decides each run's `standardise` (else
  `options.standardise` for all). With a `team` (`distributed.initialize`) every process
  calls this with the same arguments: each (run, seed) is one round of the team, every
  process segments its share of that folder's unfinished cases, and only the leader's
  results carry the merged summaries (the others' are their own rows; their log is empty).

  Returns:
    `({slug: [RunResult per seed]}, log)`, log one dict per run: slug, seed, cases,
    finished, failed, cases resumed, wall seconds of this call.
  """
  root = Path(options.out_dir)
  runs = plan_.runs
  for run in runs:  # a vote needs the object step: refused before anything runs
    if run.method.kind == "vote":
      method_vote.check_options(run.config, objects=options.objects,
                                seeds_per_image=options.seeds_per_image)
  for run in runs:  # check every folder before spending hours on the first runs
    for seed in seeds:
      _same_settings(run.config, run_options(options, root, run, seed, standardise_of),
                     (run_info or {}).get("dataset"))
  out: Dict[str, List[image_runs.RunResult]] = {}
  log: List[Dict[str, Any]] = []
  rounds = [(run, seed) for run in runs for seed in seeds]
  for index, (run, seed) in enumerate(rounds):
    opts = run_options(options, root, run, seed, standardise_of)
    resumed = sum(results.case_path(opts.out_dir, c.case_id).exists() for c in cases)
    print(f"{run.slug} seed {seed}: {len(cases)} cases -> {opts.out_dir}", file=sys.stderr)
    t = time.perf_counter()
    result = image_runs.run_dataset(cases, load, run.config, opts, run.method,
                                    compiler_options=compiler_options,
                                    call_kwargs=call_kwargs,
                                    run_info=dict(run_info or {}, table_run=run.slug),
                                    team=team, leave_team=index == len(rounds) - 1)
    wall = time.perf_counter() - t
    out.setdefault(run.slug, []).append(result)
    if team is None or team.leader:
      log.append(
          {"run": run.slug, "method": run.name, "seed": seed, "cases": len(cases),
           "finished": result.summary["finished"], "failed": len(result.failures),
           "resumed": resumed, "wall_seconds": round(wall, 2),
           "seconds_per_image": result.summary["seconds_per_case"]["mean"]})
  return out, log


def _columns(runs: Sequence[Run], done: Mapping[str, List[image_runs.RunResult]],
             paper: Optional[str]) -> List[tables.Column]:
  """Table columns; `paper`: the data set whose published figures join them (or None)."""
  return [tables.Column(r.slug, r.title, [res.summary for res in done[r.slug]],
                        tables.paper_figures(paper, r.name, r.k) if paper else {},
                        [res.rows for res in done[r.slug]]) for r in runs]


def protocol_notes(runs: Sequence[Run], done: Mapping[str, List[image_runs.RunResult]],
                   dataset: str, seeds: Sequence[int], rule: str,
                   extra: Sequence[str] = ()) -> List[str]:
  """What a reader needs to redo the table: data, sizes, seeds, rule, configurations."""
  any_rows = next(iter(done.values()))[0].rows if done else []
  shapes = sorted({(r["work_height"], r["work_width"]) for r in any_rows})
  native = sorted({(r["height"], r["width"]) for r in any_rows})
  rules = next(iter(done.values()))[0].summary["selection_rules"] if done else {}
  notes = [f"Data: {dataset}, {len(any_rows)} images; scored at the mask's resolution "
           f"({len(native)} distinct sizes, e.g. {native[0][0]}x{native[0][1]})" if native
           else f"Data: {dataset}",
           "Working size (every method): " + ", ".join(f"{h}x{w}" for h, w in shapes)
           + "; labels back to the mask's size by nearest neighbour",
           f"Selection rule: {rule} ({rules.get(rule, '')})",
           f"Seeds: {', '.join(str(s) for s in seeds)} (each image's key: "
           "fold_in(key(seed), crc32(case id)))"]
  for run in runs:
    res = done[run.slug]
    it = np.mean([r.summary["iterations"]["mean"] for r in res])
    nl = np.mean([r.summary["n_labels"]["mean"] for r in res])
    notes.append(f"{run.title} (`{run.slug}`): {run.config}; iterations done {it:.1f}, "
                 f"labels left {nl:.1f} (means)")
  return notes + list(extra)


# Table file suffix of each protocol (table1.md is the paper's protocol, as before).
PROTOCOL_SUFFIX = {"largest_overlap": "", "paper_fill": "_paper_fill", "object": "_object",
                   "central": "_central", "gt_clipped": "_gt_clipped_INFLATED",
                   "oracle_level": "_oracle_level", "oracle_level_object": "_oracle_level_object"}


def protocol_reference(runs: Sequence[Run]) -> Optional[str]:
  """The column every other is compared with in the protocols table: the classical floor
  (Otsu on the blue channel, else Otsu), when the table has it."""
  slugs = [r.slug for r in runs]
  return next((s for s in ("otsu_blue", "otsu") if s in slugs), None)


def write_outputs(plan_: TablePlan, done: Mapping[str, List[image_runs.RunResult]],
                  log: Sequence[Dict[str, Any]], out_dir: str, *, dataset: str,
                  seeds: Sequence[int], cases: Sequence[Case], load: Callable[[Case], Record],
                  paper: bool, total_seconds: float, notes: Sequence[str] = (),
                  figure_cases: int = 4) -> Dict[str, str]:
  """Writes the tables, the ablation chart, the cases figure and the run log.

  Returns:
    `{name: path}` of every file written.
  """
  out = Path(out_dir)
  written: Dict[str, str] = {}

  def put(name: str, data: bytes) -> None:
    files.atomic_write_bytes(out / name, data)
    written[name] = str(out / name)

  log_notes = [f"Wall time of this invocation: {total_seconds:.0f} s for "
               f"{len(log)} runs (run_log.csv; resumed cases cost nothing)"]
  present = [key for key in protocols.ALL_PROTOCOLS
              if any(f"{key}.dice" in res.summary.get("metrics", {})
                     for results_ in done.values() for res in results_)]
  for rule in present:
    suffix = PROTOCOL_SUFFIX[rule]
    ablation_title = ABLATION_TITLES.get(plan_.ablation[0].name if plan_.ablation else SGSCN)
    for name, runs, title in (("table1", plan_.table, "Table 1"),
                              ("ablation", plan_.ablation, ablation_title)):
      if not runs:
        continue
      columns = _columns(runs, done, dataset if paper and name == "table1" else None)
      ordering = [f"Ranking by DSC: {tables.ranking(columns, rule=rule)}"]
      if name == "ablation":
        pairs = ablation_pairs(runs, columns)
        dsc = {id(c): tables.metric_cell(c.summaries, tables.METRICS[0], rule).mean
               for c in columns}
        chain = all(columns.index(b) == columns.index(a) - 1 for a, b in pairs)
        steps = "; ".join(f"{a.title}{'' if chain else ' vs ' + b.title}: "
                          f"{dsc[id(a)] - dsc[id(b)]:+.1f}" for a, b in pairs)
        ordering.append(f"DSC gained by each added loss: {steps}")
      else:  # the first column (SGSCN in the default plan) against each of the others
        pairs = [(columns[0], other) for other in columns[1:]]
      ordering += [t for t in (tables.paired_text(x, y, rule=rule) for x, y in pairs) if t]
      md = tables.table_markdown(
          columns, f"{title}, {dataset}, protocol {protocols.PROTOCOL_NAMES[rule]}", rule,
          ordering,
          protocol_notes(runs, done, dataset, seeds, rule) + list(notes) + log_notes)
      put(f"{name}{suffix}.md", md.encode())
      rows, header = tables.table_csv_rows(columns, rule)
      results.write_csv_rows(out / f"{name}{suffix}.csv", rows, header)
      written[f"{name}{suffix}.csv"] = str(out / f"{name}{suffix}.csv")
      if name == "ablation" and rule == "largest_overlap":
        owner = plan_.ablation[0].method.title
        files.write_png(out / "ablation.png",
                        figures.ablation_chart(columns, f"{owner} losses, {dataset}"))
        written["ablation.png"] = str(out / "ablation.png")
  for name, runs in (("protocols", plan_.table), ("protocols_ablation", plan_.ablation)):
    if runs and present:
      md = tables.protocols_markdown(_columns(runs, done, False), present,
                                     f"DSC under each protocol, {dataset}",
                                     reference=protocol_reference(runs))
      put(f"{name}.md", md.encode())
  figure_runs = plan_.table or plan_.ablation
  if figure_runs and figure_cases > 0:
    reference = done[figure_runs[0].slug][0].rows
    ids = figures.pick_cases(reference, figure_cases)
    grid = figures.cases_figure(figure_runs, out, seeds[0], cases, load, ids)
    if grid is not None:
      files.write_png(out / "cases.png", grid)
      written["cases.png"] = str(out / "cases.png")
  results.write_csv_rows(out / "run_log.csv", log, LOG_COLUMNS)
  written["run_log.csv"] = str(out / "run_log.csv")
  put("run_log.json", (files.json_text({"runs": list(log), "total_wall_seconds":
                                           round(total_seconds, 2)}) + "\n").encode())
  return written
