"""What a command prints: quiet by default, one line on Ctrl-C, a closing block at the end.

`run(main)` is `absl.app.run(main)` with the conventions of every script here:

* JAX's and absl's INFO lines (e.g. "Unable to initialize backend 'tpu'") are hidden unless
  `--verbosity` is given;
* a usage error (a bad flag value, an unknown flag, `app.UsageError`, a bad method spec)
  exits with status 2 after one line `error: <message>` (no dump of every flag's help);
* so does a `sgscn_jax.errors.UserError` (a bad path, a run folder another run holds or
  made with other settings), as one line `error: <message>`, never a traceback;
* Ctrl-C exits with status 130 and one line (the runner has already said what is kept);
* otherwise the exit status is `main`'s (1: some case failed, 3: a run was refused).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Mapping, Optional

from absl import app, flags, logging

from sgscn_jax.errors import UserError

USAGE_ERROR = 2
INTERRUPTED = 130


def run(main: Callable[[list], Optional[int]]) -> None:
  """`app.run(main)` with quiet logging, usage errors as status 2 and Ctrl-C as 130."""
  started = []

  def wrapped(argv):
    started.append(True)
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except app.UsageError as e:   # one line, not absl's usage dump of every flag
      print(f"error: {e}", file=sys.stderr)
      return USAGE_ERROR
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      return USAGE_ERROR
    except KeyboardInterrupt as e:
      if not getattr(e, "reported", False):  # the runner has said what is kept
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
      # Objects the interrupt left half-used (an image file being read) are collected at
      # exit; their `__del__` errors would print tracebacks after the one-line message.
      sys.unraisablehook = lambda unraisable: None
      return INTERRUPTED

  try:
    app.run(wrapped)
  except SystemExit as e:
    if not started and e.code not in (0, None):  # flag parsing failed before main
      sys.exit(USAGE_ERROR)
    raise


def closing_block(summary: Mapping[str, Any], out_dir: str, seconds: float,
                  report: Optional[str] = None) -> str:
  """The last lines of a run: cases done and failed, mean DSC per protocol (when there are
  masks), wall time and where the results are."""
  from sgscn_jax.evaluation import protocols
  lines = ["", f"done: {summary.get('finished', 0)} of {summary.get('cases', 0)} cases"
           f" ({summary.get('failed', 0)} failed) in {seconds:.0f} s -> {out_dir}"]
  metrics = summary.get("metrics", {})
  cells = []
  for key in protocols.PROTOCOLS:
    stats = metrics.get(f"{key}.dice")
    if stats and stats.get("mean") is not None and not math.isnan(float(stats["mean"])):
      cells.append(f"{protocols.PROTOCOL_NAMES[key]} {100 * float(stats['mean']):.1f}")
  if cells:
    lines.append("mean DSC: " + ", ".join(cells)
                 + " (paper and paper+fill choose with the mask; object and central do not)")
  lines.append(f"summary: {out_dir}/summary.md" + (f"; report: {report}" if report else ""))
  if summary.get("failed"):
    lines.append(f"failed cases: {out_dir}/failures.csv")
  return "\n".join(lines)
