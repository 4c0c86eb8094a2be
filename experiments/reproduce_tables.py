r"""SGSCN's comparison on a data set: Table 1 (every method, one protocol), the loss ablation
(Figure 3) and a figure of cases.

  python -m experiments.reproduce_tables --dataset ph2 --data_dir ../shared/data/PH2
  python -m experiments.reproduce_tables --dataset ph2 --data_dir ../shared/data/PH2 --quick
  python -m experiments.reproduce_tables --dataset folder --images imgs/ --masks masks/ \
      --seeds 0,1,2 --methods sgscn,iic,kmeans:3

Each (method, setting, seed) runs through `sgscn_jax.running.images.run_dataset` into
`<out_dir>/<run>/seed<s>/` (resumable: rerun the same command to finish), then the tables
are built from those runs' summaries: table1.{md,csv}, ablation.{md,csv,png}, the same
under the mask-free rule (*_central.*), cases.png and run_log.{csv,json}. Under each table,
paired DSC differences (SGSCN against each method; each added loss in the ablation) with a
95 % bootstrap interval over cases and per-seed values: a ranking of means alone does not
say whether an ordering is resolved.

Data-set and working-size flags are `experiments.segment`'s (--dataset, --data_dir,
--images, --masks, --mask_pattern, --size, --bucket, --batch_size, --standardise, --limit, --demo_n,
--demo_size), and so are SGSCN's settings (--iterations, --lr, --w_ss, ...: the base of
the ablation). --method, --k and --seed are segment.py's: use --methods and --seeds here.
--methods may name s3net (not a default column); every method then runs at the one --size
(pass --size 256x256 for S3-Net's published working size; --deform_bound R gives S3-Net's
bounded deformable conv, and a data set's per-method --standardise default applies, e.g.
lung CT standardises S3-Net's input). --gt_clipped r adds the INFLATED
diagnostic protocol's tables (*_gt_clipped_INFLATED.*).
--tables_dir DIR: once every run has finished, also copy the Markdown and CSV tables into DIR
(e.g. docs/tables/ph2), each headed by `<!-- made by: <this command> at commit <hash> -->`
(a `# made by: ...` line in a CSV); figures stay in --out_dir. Rerunning a command on saved
runs only resumes them, so this regenerates a data set's tables in the docs.
Several processes (segment.py's --distributed, or --coordinator_address, --num_processes,
--process_id; docs/DISTRIBUTED.md): every process runs the same command, each run folder's
unfinished cases are dealt among them, one folder after another, and process 0 writes the
tables (a team of one-core processes is the fastest way through a table on a small CPU
machine: `taskset -c P` for process P).
--quick: 3 images (unless --limit), tiny settings for every method, compiled at XLA
optimisation level 0: for tests and smoke runs, its numbers mean nothing.
This file only turns flags into calls; the work is `sgscn_jax.running.comparison`.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time

from absl import app
from absl import flags

from sgscn_jax.reporting import console
from sgscn_jax.reporting import tables

from experiments import methods_flag  # --methods_module
from experiments import segment  # the shared data-set flags, case listing and SGSCN flags
from sgscn_jax.running import comparison
from sgscn_jax.running import distributed
from sgscn_jax.running import images as image_runs

FLAGS = flags.FLAGS
flags.DEFINE_string("seeds", "0", "Comma-separated seeds; > 1 seed adds ± std over seeds.")
flags.DEFINE_string("methods", ",".join(comparison.DEFAULT_METHODS),
                    "Table 1's columns, comma-separated, each in the method grammar (docs/"
                    "USAGE.md): e.g. sgscn,kmeans:3,iic:k=4,steps=100,"
                    "vote:sgscn+kmeans:5+otsu_blue.")
flags.DEFINE_bool("ablation", True, "Also run SGSCN with L_ce, L_ce + L_ss, L_ce + L_ss + L_cc.")
flags.DEFINE_enum("ablation_of", "sgscn", ["sgscn", "s3net"],
                  "Whose losses the ablation takes apart: sgscn (L_ce; + L_ss; + L_cc) or s3net "
                  "(the poster's table: L_ce; + L_S; + L_AT; all three).")
flags.DEFINE_bool("quick", False, "Few images, few iterations, tiny settings (tests, smoke runs).")
flags.DEFINE_integer("figure_cases", 4, "Cases (rows) in cases.png.")
flags.DEFINE_enum("paper", "auto", ["auto", "yes", "no"],
                  "Rows with the SGSCN paper's numbers (auto: for --dataset ph2, its Table 1, "
                  "and ultrasound, its Table 2 on another ultrasound data set).")
flags.DEFINE_string("tables_dir", None,
                    "Also copy the Markdown and CSV tables here (e.g. docs/tables/ph2), each "
                    "stamped at its top with this command and the commit of the code.")

QUICK_LIMIT = 3


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name, instead in (("method", "--methods"), ("k", "--methods kmeans:K"), ("seed", "--seeds")):
    if FLAGS[name].present:
      raise app.UsageError(f"--{name} is segment.py's; here use {instead}")
  methods_flag.load()
  try:
    seeds = [int(s) for s in FLAGS.seeds.split(",") if s.strip()]
  except ValueError:
    raise app.UsageError(f"--seeds needs distinct integers, got {FLAGS.seeds!r}")
  methods = comparison.parse_methods(FLAGS.methods)   # a bad spec: one line, exit 2
  segment.check_fit_dir()
  if not seeds or len(set(seeds)) != len(seeds):
    raise app.UsageError(f"--seeds needs distinct integers, got {FLAGS.seeds!r}")
  team = segment.team_from_flags()  # before any JAX computation
  if team is not None and FLAGS.overwrite:
    raise app.UsageError("--overwrite is for single-process runs: recompute a distributed "
                         "run into a new --out_dir")
  if FLAGS.quick and FLAGS.limit is None:
    FLAGS.limit = QUICK_LIMIT
  try:
    cases, load = segment.list_cases()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  configs = comparison.quick_configs() if FLAGS.quick else comparison.default_configs()
  if not FLAGS.quick:
    configs[comparison.SGSCN] = segment.config_from_flags()
    if FLAGS.deform_bound is not None:  # S3-Net's own preset, with only its conv's bound
      configs["s3net"] = dataclasses.replace(configs["s3net"],
                                             deform_offset_bound=FLAGS.deform_bound or None)
  plan = comparison.plan(methods, FLAGS.ablation, configs, ablation_of=FLAGS.ablation_of)
  if not plan.runs:
    raise app.UsageError("nothing to run: give --methods or --ablation")
  out_dir = FLAGS.out_dir or f"runs/tables_{FLAGS.dataset}" + ("_quick" if FLAGS.quick else "")
  options = image_runs.RunOptions(
      out_dir=out_dir, size=segment.parse_size(FLAGS.size, FLAGS.dataset),
      bucket_multiple=FLAGS.bucket, batch_size=segment.batch_size_from_flags(),
      montage_cases=FLAGS.montage, standardise=FLAGS.standardise,
      objects=segment.objects_from_flags(), hair_removal=FLAGS.hair_removal,
      gt_clipped=FLAGS.gt_clipped, overwrite=FLAGS.overwrite,
      despeckle=segment.despeckle_from_flags(), fit_dir=FLAGS.fit_dir)
  print(f"{len(plan.runs)} runs x {len(seeds)} seeds over {len(cases)} cases -> {out_dir}",
        file=sys.stderr)
  start = time.perf_counter()
  try:
    done, log = comparison.run_all(plan, seeds, cases, load, options,
                                   compiler_options=(comparison.FAST_COMPILE if FLAGS.quick
                                                     else None),
                                   call_kwargs=segment.call_kwargs_from_flags(),
                                   run_info={"argv": sys.argv, "dataset": FLAGS.dataset,
                                             "data_dir": FLAGS.data_dir, "quick": FLAGS.quick},
                                   standardise_of=segment.standardise_from_flags, team=team)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except distributed.IncompleteRun as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  if team is not None and not team.leader:
    failed = sum(len(r.failures) for results in done.values() for r in results)
    print(f"process {team.index}: shares done ({failed} failed); process 0 writes the tables",
          file=sys.stderr)
    return 1 if failed else 0
  paper = FLAGS.paper == "yes" or (FLAGS.paper == "auto"
                                   and FLAGS.dataset in tables.PAPER_FIGURES)
  notes = (["QUICK MODE: tiny settings, compiled at XLA optimisation level 0; "
            "the numbers are not results"] if FLAGS.quick else [])
  written = comparison.write_outputs(
      plan, done, log, out_dir, dataset=FLAGS.dataset, seeds=seeds, cases=cases, load=load,
      paper=paper, total_seconds=time.perf_counter() - start, notes=notes,
      figure_cases=FLAGS.figure_cases)
  print(open(written["table1.md"] if "table1.md" in written else written["ablation.md"]).read())
  if "ablation.md" in written and "table1.md" in written:
    print(open(written["ablation.md"]).read())
  failed = sum(entry["failed"] for entry in log)
  print(f"wrote {', '.join(sorted(written))} in {out_dir}", file=sys.stderr)
  if failed:
    print(f"{failed} case run(s) failed: see the runs' failures.csv", file=sys.stderr)
    if FLAGS.tables_dir:
      print(f"nothing copied to {FLAGS.tables_dir}: the tables are incomplete", file=sys.stderr)
    return 1
  if FLAGS.tables_dir:
    command = "python -m experiments.reproduce_tables " + shlex.join(sys.argv[1:])
    copied = tables.copy_stamped(written, FLAGS.tables_dir, command, tables.source_commit())
    print(f"copied {len(copied)} tables to {FLAGS.tables_dir}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  console.run(main)
