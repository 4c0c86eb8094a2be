"""Running a method over a whole data set, losing nothing.

    cases --(load, check, resize to the bucket shape)--> per-bucket queues
          --(a full queue: one `method(keys, images, config)` call, i.e. one jit per bucket)-->
          labels --(back to the image's resolution, nearest neighbour)--> label map PNG
          --(selection rules, metrics)--> overlay PNG, history CSV, cases/<id>.json
    then  cases/*.json --> results.csv, summary.json, summary.md, montage.png

Guarantees:
* Every output file is written atomically; `cases/<id>.json` is written last, so a case is
  "done" exactly when its JSON exists. A rerun with the same `out_dir` skips done cases.
* Each image's key is `fold_in(key(seed), crc32(case_id))`: its result does not depend on
  batch composition, order or resumption, so a resumed run gives the same summary.
* A case that cannot be read or fails later is recorded in `failures.csv` with its reason;
  the run goes on. Ctrl-C leaves every finished case intact.
* Partial batches are padded (with copies of their last image, results discarded) to the
  batch size, so each bucket compiles once.
* Many processes (`team`, see `sgscn_jax.distributed`): each segments its share of the
  cases not done, into the same `out_dir`; process 0 merges once all shares are done.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import numpy as np

from sgscn_jax import distributed, io, metrics, progress, report, resize, results
from sgscn_jax.config import Config
from sgscn_jax.datasets import Case, Record
from sgscn_jax.optimize import check_image, segment_batch

Method = Callable[[jax.Array, np.ndarray, Config], Any]  # -> Segmentation-like, batched

SUMMARY_METRICS = ("dice", "jaccard", "xor", "hammoude", "xor_over_intersection",
                   "precision", "recall", "hd95")
FAILURES_CSV = "failures.csv"


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How a data set is run (everything but the method's own `Config`).

  Attributes:
    out_dir: folder for every output; reruns with the same folder resume.
    size: working size: None (native), an int (long side) or `(h, w)`.
    bucket_multiple: bucket shapes are multiples of this (1: exact working shapes).
    batch_size: images per `method` call (same bucket shape).
    seed: base seed; each case's key is `fold_in(key(seed), crc32(case_id))`.
    overlay_rule: the selection rule drawn in overlays when a mask exists.
    montage_cases: how many cases (the first, by id) the montage shows.
    method_name: recorded in every row and the summary.
    standardise: the method sees each working image standardised (`io.standardise`: zero
      mean, unit variance per channel) instead of its [0, 1] intensities; overlays and
      scores are unchanged. Off by default, as in the paper.
  """
  out_dir: str
  size: Any = None
  bucket_multiple: int = 16
  batch_size: int = 4
  seed: int = 0
  overlay_rule: str = "largest_overlap"
  montage_cases: int = 6
  method_name: str = "sgscn"
  standardise: bool = False


class Pending(NamedTuple):
  case: Case
  record: Record
  work: np.ndarray       # [h, w, C] float32 at the bucket shape
  load_seconds: float


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


def score_labels(labels: np.ndarray, record: Record) -> Dict[str, float]:
  """Metrics of every selection rule that applies, as `{"<rule>.<metric>": value}`.

  Uses the record's `valid` region (e.g. DRIVE's field of view) and, for volumes, its voxel
  `spacing` (HD95 in the spacing's unit), when present in `record.extra`.
  """
  row: Dict[str, float] = {}
  if record.mask is None:
    return row
  valid = record.extra.get("valid")
  spacing = record.extra.get("spacing")
  for rule in metrics.SELECTION_RULES:
    pred = metrics.select(labels, rule, record.mask, valid)
    for name, value in metrics.all_metrics(pred, record.mask, valid, spacing=spacing).items():
      row[f"{rule}.{name}"] = value
  return row


def _overlay_prediction(labels, record: Record, rule: str) -> np.ndarray:
  if record.mask is None or rule != "largest_overlap":
    return metrics.select(labels, "central")
  return metrics.select(labels, rule, record.mask, record.extra.get("valid"))


def _write_history(path: Path, history) -> None:
  names = sorted(history.terms)
  lines = ["iteration,total," + ",".join(names) + ",n_labels"]
  n = np.asarray(history.n_labels)
  total = np.asarray(history.total)
  terms = {k: np.asarray(v) for k, v in history.terms.items()}
  for i in range(len(total)):
    if n[i] < 0 and math.isnan(total[i]):
      break
    lines.append(",".join([str(i), repr(float(total[i]))]
                          + [repr(float(terms[k][i])) for k in names] + [str(int(n[i]))]))
  io.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _finish_case(item: Pending, seg_i, seconds: float, options: RunOptions) -> Dict[str, Any]:
  """Writes one case's outputs; its JSON (the 'done' marker) last."""
  out = Path(options.out_dir)
  record = item.record
  labels = resize.labels_to_shape(np.asarray(seg_i.labels), record.image.shape[:2])
  io.write_label_map(out / "labels" / f"{record.case_id}.png", labels)
  pred = _overlay_prediction(labels, record, options.overlay_rule)
  io.write_png(out / "overlays" / f"{record.case_id}.png",
               report.overlay(record.image, pred, record.mask))
  if seg_i.history is not None:
    _write_history(out / "history" / f"{record.case_id}.csv", seg_i.history)
  row: Dict[str, Any] = {
      "case_id": record.case_id, "method": options.method_name,
      "height": record.image.shape[0], "width": record.image.shape[1],
      "work_height": item.work.shape[0], "work_width": item.work.shape[1],
      "iterations": int(seg_i.iterations), "n_labels": int(seg_i.n_labels),
      "finite": bool(seg_i.finite), "seconds": round(seconds + item.load_seconds, 3),
  }
  for key in ("diagnosis", "diagnosis_name"):
    if record.extra.get(key) is not None:
      row[key] = record.extra[key]
  row.update(score_labels(labels, record))
  results.write_case(out, row)
  return row


def _index(seg, i):
  return jax.tree.map(lambda a: a[i], seg)


class _Runner:
  """The mutable part of one run: queues, failures, progress."""

  def __init__(self, method: Method, config: Config, options: RunOptions, total: int, done: int):
    self.method, self.config, self.options = method, config, options
    self.queues: Dict[tuple, List[Pending]] = {}
    self.failures: List[Dict[str, str]] = []
    self.progress = progress.ProgressBar(total, options.method_name, initial=done)

  def fail(self, case: Case, error: BaseException) -> None:
    reason = f"{type(error).__name__}: {error}".splitlines()[0]
    self.failures.append({"case_id": case.case_id, "path": str(case.image_path), "reason": reason})
    print(f"\nfailed: {case.case_id}: {reason}", file=sys.stderr)
    self.progress.update(1, note=f"{case.case_id} FAILED")

  def add(self, case: Case, load: Callable[[Case], Record]) -> None:
    t = time.perf_counter()
    try:
      record = load(case)
      check_image(record.image, name=f"{case.case_id} ({case.image_path})")
      shape = resize.bucket_shape(resize.working_shape(record.image.shape, self.options.size),
                                  self.options.bucket_multiple)
      work = resize.resize_image(record.image, shape)
      if self.options.standardise:
        work = io.standardise(work)
    except Exception as e:  # noqa: BLE001 - any bad case is recorded, the run goes on
      self.fail(case, e)
      return
    queue = self.queues.setdefault(tuple(work.shape), [])
    queue.append(Pending(case, record, work, time.perf_counter() - t))
    if len(queue) >= self.options.batch_size:
      self.flush(tuple(work.shape))

  def flush(self, shape: tuple) -> None:
    items = self.queues.pop(shape, [])
    if not items:
      return
    n, b = len(items), self.options.batch_size
    images = np.stack([it.work for it in items] + [items[-1].work] * (b - n))
    ids = [it.case.case_id for it in items] + [items[-1].case.case_id] * (b - n)
    keys = jax.numpy.stack([case_key(self.options.seed, i) for i in ids])
    t = time.perf_counter()
    try:
      seg = jax.block_until_ready(self.method(keys, images, self.config))
    except Exception as e:  # noqa: BLE001
      for it in items:
        self.fail(it.case, e)
      return
    seconds = (time.perf_counter() - t) / n
    seg = jax.device_get(seg)
    for i, it in enumerate(items):
      try:
        row = _finish_case(it, _index(seg, i), seconds, self.options)
      except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        self.fail(it.case, e)
        continue
      dsc = row.get("largest_overlap.dice")
      self.progress.update(1, note=it.case.case_id + ("" if dsc is None else f" DSC {100 * dsc:.1f}"))

  def flush_all(self) -> None:
    for shape in list(self.queues):
      self.flush(shape)


def metric_summary(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Mean, std, n of every `<rule>.<metric>` column present in `rows`."""
  columns = [f"{rule}.{m}" for rule in metrics.SELECTION_RULES for m in SUMMARY_METRICS]
  present = [c for c in columns if any(c in r for r in rows)]
  return results.summarise(rows, present) if present else {}


def summarise_run(rows: Sequence[Dict[str, Any]], config: Config, options: RunOptions,
                  n_cases: int, n_failed: int) -> Dict[str, Any]:
  """The deterministic summary of a run: depends only on the finished cases' rows."""
  stats = results.summarise(rows, ["iterations", "n_labels", "seconds"])
  return {
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
      "selection_rules": {
          "largest_overlap": "label with the largest overlap with the ground truth "
                             "(oracle; ties: fewer pixels outside it, then lower id)",
          "central": "label with the largest share^2/size under a centre prior "
                     "(no ground truth)"},
  }


def _summary_markdown(summary: Dict[str, Any]) -> str:
  parts = []
  for rule in metrics.SELECTION_RULES:
    stats = {k.split(".", 1)[1]: v for k, v in summary["metrics"].items()
             if k.startswith(rule + ".")}
    if not stats:
      continue
    hd = stats.pop("hd95", None)
    notes = [f"Selection rule: {rule} ({summary['selection_rules'][rule]}).",
             f"{summary['finished']} of {summary['cases']} cases, {summary['failed']} failed; "
             f"method {summary['method']}, seed {summary['seed']}."]
    if hd is not None:
      notes.append(f"HD95 (pixels): {hd['mean']:.1f} ± {hd['std']:.1f}.")
    parts.append(results.summary_markdown(stats, title=f"{summary['method']}, {rule}", notes=notes))
  if not parts:
    parts.append(f"# {summary['method']}\n\nNo ground truth: segmentation only, "
                 f"{summary['finished']} of {summary['cases']} cases.\n")
  it, nl = summary["iterations"], summary["n_labels"]
  parts.append(f"Iterations {it['mean']:.1f} ± {it['std']:.1f}; labels left "
               f"{nl['mean']:.1f} ± {nl['std']:.1f}; "
               f"seconds per case {summary['seconds_per_case']['mean']:.2f}.\n")
  return "\n".join(parts)


def _montage(cases: Sequence[Case], load: Callable[[Case], Record], options: RunOptions) -> None:
  out = Path(options.out_dir)
  rows = []
  for case in cases[: options.montage_cases]:
    path = out / "labels" / f"{case.case_id}.png"
    row = results.read_case(out, case.case_id)
    if row is None or not path.exists():
      continue
    import imageio.v3 as iio
    record = load(case)
    labels = np.asarray(iio.imread(path)).astype(np.int64)
    pred = _overlay_prediction(labels, record, options.overlay_rule)
    dsc = row.get(f"{options.overlay_rule}.dice")
    title = case.case_id + ("" if dsc is None or math.isnan(dsc) else f"  DSC {100 * dsc:.1f}")
    rows.append((title, record.image, record.mask, pred, labels))
  if rows:
    height = min(256, max(r[1].shape[0] for r in rows))
    io.write_png(out / "montage.png", report.montage(rows, panel_height=height))


def run_dataset(cases: Sequence[Case], load: Callable[[Case], Record], config: Config,
                options: RunOptions, method: Method = segment_batch,
                run_info: Optional[Dict[str, Any]] = None,
                team: Optional[distributed.Team] = None) -> RunResult:
  """Segments every case not already done in `options.out_dir`; see the module docstring.

  With a `team` (`sgscn_jax.distributed`), this process segments only its share of the
  cases not done; process 0 writes run.json and, once every share is done, the merged
  outputs (the others return their own rows and an empty summary). Raises
  `distributed.IncompleteRun` on process 0 if another process died.
  """
  out = Path(options.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  leader = team is None or team.leader
  info = dict(run_info or {}, config=dataclasses.asdict(config),
              options=dataclasses.asdict(options), versions=versions(),
              started=time.strftime("%Y-%m-%dT%H:%M:%S"))
  if leader:
    io.atomic_write_bytes(out / "run.json", (json_text(info) + "\n").encode())

  done = {c.case_id for c in cases if results.case_path(out, c.case_id).exists()}
  pending = [c for c in cases if c.case_id not in done]
  if done and leader:
    print(f"resuming: {len(done)} of {len(cases)} cases already done in {out}", file=sys.stderr)
  total = len(cases)
  if team is not None:
    pending = team.share(cases, pending, lambda c: distributed.case_cost(
        c, options.size, options.bucket_multiple))
    total, done = len(pending), set()
    print(f"process {team.index}: {total} case(s) to segment", file=sys.stderr)
  runner = _Runner(method, config, options, total, len(done))
  try:
    for case in pending:
      runner.add(case, load)
    runner.flush_all()
  except KeyboardInterrupt:
    runner.progress.close()
    print(f"\ninterrupted: finished cases are saved in {out}; rerun the same command to "
          "finish the rest", file=sys.stderr)
    if team is None:
      _write_failures(out, runner.failures)
    raise
  runner.progress.close()
  failures = runner.failures
  if team is not None:
    failures = team.gather(failures, cases, lambda c: results.case_path(out, c.case_id))
    if failures is None:  # not the leader: process 0 merges
      return RunResult([results.read_case(out, c.case_id) for c in pending
                        if results.case_path(out, c.case_id).exists()], runner.failures, {})
  _write_failures(out, failures)
  rows = results.collect_rows(out)
  rows = [r for r in rows if r["case_id"] in {c.case_id for c in cases}]
  summary = summarise_run(rows, config, options, len(cases), len(failures))
  io.atomic_write_bytes(out / "summary.json", (json_text(summary) + "\n").encode())
  io.atomic_write_bytes(out / "summary.md", _summary_markdown(summary).encode())
  _montage(cases, load, options)
  return RunResult(rows, failures, summary)


def _plain(value):
  """JSON-ready: NumPy scalars to Python, tuples to lists, NaN/inf to strings."""
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return str(value)


def json_text(value) -> str:
  return json.dumps(_plain(value), indent=1, sort_keys=True, allow_nan=False)


def _write_failures(out: Path, failures: List[Dict[str, str]]) -> None:
  path = out / FAILURES_CSV
  if failures:
    results.write_csv_rows(path, failures, ["case_id", "path", "reason"])
  elif path.exists():
    path.unlink()
