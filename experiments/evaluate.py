r"""Re-score the label maps of a finished run against the masks, without segmenting again.

  python -m experiments.evaluate --dataset ph2 --data_dir ../shared/data/PH2 --out_dir runs/ph2
  python -m experiments.evaluate ... --out_dir runs/ph2_kmeans --method kmeans:5

`--method` (the method grammar, docs/USAGE.md) is optional: given, the folder must hold a run
of that method (its name and config as `run.json` records them), or the command stops with
one line.

Takes the same data-set flags as `experiments.segment`; writes `<out_dir>/rescored.csv` and
`<out_dir>/rescored.json` and prints the summary. Exit status 1 if a case could not be scored.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags

from sgscn_jax.data import files
from sgscn_jax.errors import UserError
from sgscn_jax.reporting import console

from experiments import segment  # the shared data-set flags and case listing
from sgscn_jax.running import rescore

FLAGS = flags.FLAGS
flags.DEFINE_string("name", "rescored", "Base name of the written CSV and JSON.")


def check_method(out_dir: str, name: str, config) -> None:
  """--method (its run name and config) names the method the run in `out_dir` was made with
  (a `UserError` if not)."""
  path = os.path.join(out_dir, "run.json")
  if not os.path.exists(path):
    return
  saved = json.loads(open(path).read())
  made = saved.get("options", {}).get("method_name", "sgscn")
  wanted = json.loads(files.json_text(dataclasses.asdict(config)))
  differ = [k for k in wanted if k in saved.get("config", {}) and saved["config"][k] != wanted[k]]
  if made != name or differ:
    what = f"method {made}" if made != name else "config " + ", ".join(
        f"{k} {saved['config'][k]} (not {wanted[k]})" for k in differ)
    raise UserError(f"--out_dir {out_dir} holds a run of another {what}; --method "
                    f"{FLAGS.method} does not name it")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out_dir = FLAGS.out_dir or f"runs/{FLAGS.dataset}"
  spec = segment.method_from_flags() if FLAGS["method"].present else None   # before any work
  if not os.path.isdir(out_dir):
    what = "is a file" if os.path.exists(out_dir) else "does not exist"
    raise UserError(f"--out_dir {out_dir} {what}: name the folder of a finished run "
                    "(it holds labels/)")
  if spec is not None:
    check_method(out_dir, *spec[1:])
  try:
    cases, load = segment.list_cases()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  summary = rescore.rescore(cases, load, out_dir, FLAGS.name)
  for name, stats in summary["metrics"].items():
    print(f"{name:>40}: {100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}  (n={stats['n']})")
  print(f"scored {summary['scored']} of {summary['cases']}; "
        f"{len(summary['missing_label_maps'])} without a label map; {summary['failed']} failed")
  return 1 if summary["failed"] else 0


if __name__ == "__main__":
  console.run(main)
