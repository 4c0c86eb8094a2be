"""The one run core shared by images and volumes: resume, run.json, progress, failures,
Ctrl-C, summaries.

    execute(cases, driver, ...):
      out   = folder.make(out_dir); hold out/run.lock      (one writer: `running.folder`)
      check the settings against run.json                (other result settings: refused,
                                                          or recomputed with `overwrite`)
      done  = cases whose cases/<id>.json exists          (a rerun skips them)
      info  = driver.prepare(pending, failures)          (e.g. the volume memory plans)
      run.json (argv, config, options, versions, info)   (process 0 of a team)
      driver.run(pending, recorder)                      (segments, writes each case;
                                                          recorder.fail / recorder.done)
      failures.csv, results.csv, summary.json, summary.md, then driver.finish (montage)

Guarantees (both drivers): every file is written atomically and a case's JSON last, so a
case is done exactly when its JSON exists; a failing case is recorded with its reason in
failures.csv and the run goes on; Ctrl-C leaves every finished case intact; each case's
key is `case_key(seed, case_id)`, independent of batch composition, order or resumption.
The drivers are `images.ImageDriver` (bucketed batches of 2D images) and
`volumes.VolumeDriver` (planned volumes, one at a time); what a case is worth is
`scoring`'s, how an image case is written `case_files`'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Sequence

import jax
import numpy as np

from sgscn_jax.data import files
from sgscn_jax.data.datasets import Case
from sgscn_jax.evaluation import protocols
from sgscn_jax.reporting import html_report, progress, summary as summary_md
from sgscn_jax.running import distributed, folder, results

SUMMARY_METRICS = ("dice", "jaccard", "xor", "hammoude", "xor_over_intersection",
                   "precision", "recall", "hd95")
FAILURES_CSV = "failures.csv"


class RunResult(NamedTuple):
  rows: List[Dict[str, Any]]
  failures: List[Dict[str, str]]
  summary: Dict[str, Any]


def case_key(seed: int, case_id: str) -> jax.Array:
  """The PRNG key of one case: `fold_in(key(seed), crc32(case_id) mod 2^31)`."""
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(case_id.encode()) & 0x7FFFFFFF)


def versions() -> Dict[str, str]:
  import flax
  import optax
  from sgscn_jax import __version__
  return {"sgscn_jax": __version__, "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__,
          "python": platform.python_version()}


def failure(case: Case, error: BaseException) -> Dict[str, str]:
  """A failures.csv row: the case, its file and the first line of the error."""
  reason = f"{type(error).__name__}: {error}".splitlines()[0]
  return {"case_id": case.case_id, "path": str(case.image_path), "reason": reason}


class Recorder:
  """What a driver reports to: finished cases and failures, shown on the progress bar."""

  def __init__(self, bar: progress.ProgressBar, failures: List[Dict[str, str]]):
    self.bar, self.failures = bar, failures

  def fail(self, case: Case, error: BaseException) -> None:
    row = failure(case, error)
    self.failures.append(row)
    print(f"\nfailed: {case.case_id}: {row['reason']}", file=sys.stderr)
    self.bar.update(1, note=f"{case.case_id} FAILED")

  def done(self, row: Dict[str, Any]) -> None:
    dsc = row.get("largest_overlap.dice")
    self.bar.update(1, note=row["case_id"] + ("" if dsc is None or math.isnan(dsc)
                                              else f" DSC {100 * dsc:.1f}"))


class Driver(Protocol):
  """How one kind of input is segmented; `execute` does everything else."""
  options: Any   # has out_dir, seed, method_name, overlay_rule

  def prepare(self, cases: Sequence[Case], pending: Sequence[Case],
              failures: List[Dict[str, str]]) -> Dict[str, Any]:
    """Before anything runs (may refuse the run by raising, may bring finished cases up to
    date); returns extra run.json entries."""

  def run(self, pending: Sequence[Case], recorder: Recorder) -> None:
    """Segments and writes each pending case, reporting to `recorder`."""

  def summary_extra(self, rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Entries added to summary.json (e.g. the HD95 unit)."""

  def finish(self, cases: Sequence[Case]) -> None:
    """After the summary (e.g. the montage)."""


def metric_summary(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Mean, std, n of every `<rule>.<metric>` column present in `rows`, over the cases whose
  ground truth has a foreground (an empty mask's scores stay in its row, apart)."""
  scored = [r for r in rows if not r.get("empty_mask")]
  columns = [f"{key}.{m}" for key in protocols.ALL_PROTOCOLS for m in SUMMARY_METRICS]
  present = [c for c in columns if any(c in r for r in scored)]
  return results.summarise(scored, present) if present else {}


EMPTY_MASK_RULE = ("cases whose ground-truth mask is empty are scored in their rows (both "
                   "empty: perfect; a prediction against an empty mask: DSC 0, XOR and HD95 "
                   "inf) and left out of the means")


def summarise_run(rows: Sequence[Dict[str, Any]], config, options, n_cases: int,
                  n_failed: int) -> Dict[str, Any]:
  """The deterministic summary of a run: depends only on the finished cases' rows."""
  stats = results.summarise(rows, ["iterations", "n_labels", "seconds"])
  empty = sorted(r["case_id"] for r in rows if r.get("empty_mask"))
  return {
      "empty_masks": empty, "empty_mask_rule": EMPTY_MASK_RULE,
      "method": options.method_name,
      "config": dataclasses.asdict(config),
      "options": dataclasses.asdict(options) | {"out_dir": None},
      "seed": options.seed,
      "versions": versions(),
      "cases": n_cases, "finished": len(rows), "failed": n_failed,
      "non_finite": sum(1 for r in rows if r.get("finite") is False),
      "metrics": metric_summary(rows),
      "iterations": stats["iterations"], "n_labels": stats["n_labels"],
      "seconds_per_case": stats["seconds"],
      "selection_rules": dict(protocols.PROTOCOL_TEXT),
  }


def write_failures(out: Path, failures: List[Dict[str, str]]) -> None:
  path = out / FAILURES_CSV
  if failures:
    results.write_csv_rows(path, failures, ["case_id", "path", "reason"])
  elif path.exists():
    path.unlink()


def execute(cases: Sequence[Case], driver: Driver, config, *,
            run_info: Optional[Dict[str, Any]] = None,
            team: Optional[distributed.Team] = None, leave_team: bool = True) -> RunResult:
  """Runs `driver` over every case not already done in `driver.options.out_dir`.

  With a `team` (`sgscn_jax.running.distributed`), this process segments only its share of
  the cases not done; process 0 writes run.json and, once every share is done, the merged
  outputs (the others return their own rows and an empty summary). This run is one round of
  the team; `leave_team=False` keeps the team together for another round (a table's next
  run folder), `True` ends it. Raises
  `distributed.IncompleteRun` on process 0 if another process died, and
  `folder.RunFolderError` for a folder that cannot be made or written, that another run
  holds, or whose finished cases were made with other result settings (`folder`).
  """
  options = driver.options
  out = folder.make(options.out_dir)
  leader = team is None or team.leader
  # One writer per folder: the leader holds run.lock for the whole run (the other
  # processes of a team write their shares into the same folder by design).
  with folder.RunLock(out) if leader else contextlib.nullcontext():
    return _execute(cases, driver, config, out, leader, run_info, team, leave_team)


def _execute(cases, driver: Driver, config, out: Path, leader: bool,
             run_info: Optional[Dict[str, Any]], team: Optional[distributed.Team],
             leave_team: bool) -> RunResult:
  options = driver.options
  if leader:
    has_results = any((out / results.CASES_DIR).glob("*.json"))
    settings = folder.settings_of(config, options, (run_info or {}).get("dataset"))
    for note in folder.check_settings(out, settings, type(config), type(options),
                                      has_results=has_results,
                                      overwrite=getattr(options, "overwrite", False)):
      print(note, file=sys.stderr)
  done = {c.case_id for c in cases if results.case_path(out, c.case_id).exists()}
  pending = [c for c in cases if c.case_id not in done]
  failures: List[Dict[str, str]] = []
  extra = driver.prepare(cases, pending, failures)
  info = dict(run_info or {}, config=dataclasses.asdict(config),
              options=dataclasses.asdict(options), versions=versions(),
              started=time.strftime("%Y-%m-%dT%H:%M:%S"), **extra)
  if leader:
    files.write_json(out / "run.json", info)
  if done and leader:
    print(f"resuming: {len(done)} of {len(cases)} cases already done in {out}", file=sys.stderr)
  total = len(cases)
  if team is not None:
    pending = team.share(cases, pending, driver.case_cost)
    total, done = len(pending), set()
    print(f"process {team.index}: {total} case(s) to segment", file=sys.stderr)
  bar = progress.ProgressBar(total, options.method_name, initial=len(done))
  for f in failures:
    bar.update(1, note=f"{f['case_id']} FAILED")
  recorder = Recorder(bar, failures)
  try:
    driver.run(pending, recorder)
  except KeyboardInterrupt as e:
    bar.close()
    print(f"\ninterrupted: finished cases are saved in {out}; rerun the same command to "
          "finish the rest", file=sys.stderr)
    e.reported = True  # the command line adds no second line (reporting.console)
    if team is None:
      write_failures(out, failures)
    raise
  bar.close()
  own_failures = list(failures)
  if team is not None:
    failures = team.gather(failures, cases, lambda c: results.case_path(out, c.case_id),
                           leave=leave_team)
    if failures is None:  # not the leader: process 0 merges
      return RunResult([results.read_case(out, c.case_id) for c in pending
                        if results.case_path(out, c.case_id).exists()], own_failures, {})
  write_failures(out, failures)
  ids = {c.case_id for c in cases}
  rows = [r for r in results.collect_rows(out) if r["case_id"] in ids]
  summary = summarise_run(rows, config, options, len(cases), len(failures))
  summary.update(driver.summary_extra(rows))
  files.write_json(out / "summary.json", summary)
  files.atomic_write_bytes(out / "summary.md", summary_md.run_markdown(summary).encode())
  driver.finish(cases)
  html_report.write_report(out, summary, rows, info)
  return RunResult(rows, failures, summary)
