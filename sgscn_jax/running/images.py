"""Running a registered method over a data set of 2D images (the image driver of
`runner.execute`).

    cases --(load, check, resize to the bucket shape: `inputs`)--> per-bucket queues
          --(a full queue: one `segment_batch(keys, images, config)` of the method's entry
             points, i.e. one jit per bucket; E seeds: E keys per image, `seeds`)-->
          labels --(case_files.write_case)--> the case's files and cases/<id>.json
    then  cases/*.json --> results.csv, summary.json, summary.md, report.html (`runner`),
          montage.png (`montage`)

The driver is handed the `registry.Method` and asks it what it is (`Method.kind`): a
"fitted" method (CUTS) is fitted first (`fitting.load_or_fit`, the state kept in the run
folder) and its `segment_batch` gets `state=`; a "vote" of methods keeps each member's map
and votes their objects; a method with a memory model (`Method.image_memory`) refuses a
working size that cannot fit before anything runs (`inputs.check_memory`).

The walk of a label map from the loop to the report, one way down:

    images.ImageDriver.flush    segment_batch -> the batch's labels; per case
                                seeds.case_result (E seeds: seeds.fuse)
    case_files.write_case       to the image's resolution; members' maps written;
                                scoring.score_case ONCE: object (or the members' vote),
                                a vote's 2-label map, overlay prediction, collapse, empty
                                mask, every protocol's scores -> CaseScore
                                -> labels/, objects/, overlays/, ... and cases/<id>.json
    runner.execute              rows -> results.csv, summary.json/md, report.html
    montage.write_montage       montage.png, read back from the folder

(Before issue 42 the map went from `images._finish_case` back to `runner.py` six times:
find_object, overlay_prediction, write_history, collapse_fields, check_mask, add_scores;
these now live in `scoring` and `case_files`.)

The guarantees (atomic files, resume, failures recorded, Ctrl-C, keys independent of
batching) are `runner.execute`'s. Here: partial batches are padded (with copies of their
last image, results discarded) to the batch size, so each bucket compiles once; with a
`team` (`sgscn_jax.running.distributed`) each process segments its share of the cases not
done, into the same `out_dir`, and process 0 merges once all shares are done.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.baselines import method_vote
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.running import case_files, distributed, fitting, inputs, montage, runner, seeds
from sgscn_jax.running.inputs import without_hair  # noqa: F401 - also imported from here
from sgscn_jax.running.folder import RunFolderError
from sgscn_jax.running.options import RunOptions
from sgscn_jax.running.runner import RunResult, case_key  # noqa: F401 - also imported from here
from sgscn_jax.running.seeds import seed_key


class Pending(NamedTuple):
  case: Case
  record: Record
  work: np.ndarray       # [h, w, C] float32 at the bucket shape
  load_seconds: float


class ImageDriver:
  """2D images in bucketed batches: one `segment_batch` call per full bucket queue."""

  def __init__(self, method: registry.Method, config, options: RunOptions,
               load: Callable[[Case], Record], *,
               compiler_options: Optional[Mapping[str, Any]] = None,
               call_kwargs: Optional[Mapping[str, Any]] = None):
    self.method, self.config, self.options = method, config, options
    self.entry = method.entry_points(dict(compiler_options) if compiler_options else None)
    self.call_kwargs: Dict[str, Any] = dict(call_kwargs or {})
    self.load = inputs.run_loader(load, options)
    # a vote of methods keeps its members' maps by their names (`VoteConfig.slugs`)
    self.member_slugs = tuple(config.slugs) if method.kind == "vote" else None
    self.queues: Dict[tuple, List[Pending]] = {}
    self.recorder: Optional[runner.Recorder] = None
    self.cases: List[Case] = []

  def case_cost(self, case: Case) -> int:
    return distributed.case_cost(case, self.options.size, self.options.bucket_multiple)

  def prepare(self, cases, pending, failures) -> Dict[str, Any]:
    """Refuses what cannot run, before anything runs: a working size that cannot fit in
    memory (`inputs.check_memory`), a vote without the object step or with seeds, a
    data-set method with seeds. Finished cases scored before a protocol existed (no
    `paper_fill` or, with objects on, no `object` columns) are brought up to date from
    their saved label maps (`case_files.complete_protocols`)."""
    inputs.check_memory(pending, self.method, self.config, self.options)
    if self.method.kind == "vote":
      method_vote.check_options(self.config, objects=self.options.objects,
                                seeds_per_image=self.options.seeds_per_image)
    if self.method.kind == "fitted" and self.options.seeds_per_image != 1:
      raise ValueError(f"{self.method.name}: a data-set method takes no --seeds_per_image")
    if self.options.fitted_from is not None and (self.method.kind != "fitted"
                                                 or self.options.fit_dir is not None):
      raise RunFolderError(f"--fitted_from is for a data-set method without --fit_dir (the "
                           f"state is fitted elsewhere), not {self.method.name}"
                           + (" with --fit_dir" if self.options.fit_dir else ""))
    self.cases = list(cases)
    done = [c for c in cases if c.case_id not in {p.case_id for p in pending}]
    upgraded = case_files.complete_protocols(done, self.load, self.options, self.member_slugs,
                                             self.method.labels_are_object)
    return {"upgraded_cases": upgraded} if upgraded else {}

  def run(self, pending: Sequence[Case], recorder: runner.Recorder) -> None:
    self.recorder = recorder
    if self.method.kind == "fitted" and pending and self.options.fitted_from is not None:
      self.call_kwargs["state"] = fitting.load_fitted(   # another run's state, not refitted
          self.method, self.config, Path(self.options.fitted_from), Path(self.options.out_dir))
    elif self.method.kind == "fitted" and pending:   # a data-set method: fit first
      self.call_kwargs["state"] = fitting.load_or_fit(
          self.method, self.config, self.fit_images, Path(self.options.out_dir),
          self.options.seed, fit_dir=self.options.fit_dir, overwrite=self.options.overwrite,
          objects=self.options.objects)
    for case in pending:
      self.add(case)
    for shape in list(self.queues):
      self.flush(shape)

  def fit_images(self) -> tuple:
    """(ids, working images, valid regions) a data-set method is fitted on
    (`inputs.fit_images`)."""
    return inputs.fit_images(self.cases, self.load, self.options)

  def add(self, case: Case) -> None:
    t = time.perf_counter()
    try:
      record = self.load(case)
      work = inputs.working_image(record, case, self.options)
    except Exception as e:  # noqa: BLE001 - any bad case is recorded, the run goes on
      self.recorder.fail(case, e)
      return
    queue = self.queues.setdefault(tuple(work.shape), [])
    queue.append(Pending(case, record, work, time.perf_counter() - t))
    if len(queue) >= self.options.batch_size:
      self.flush(tuple(work.shape))

  def flush(self, shape: tuple) -> None:
    items = self.queues.pop(shape, [])
    if not items:
      return
    n, b, e = len(items), self.options.batch_size, self.options.seeds_per_image
    works = [it.work for it in items] + [items[-1].work] * (b - n)
    ids = [it.case.case_id for it in items] + [items[-1].case.case_id] * (b - n)
    images = np.stack([w for w in works for _ in range(e)])
    keys = jax.numpy.stack([seed_key(self.options.seed, i, s, e) for i in ids for s in range(e)])
    t = time.perf_counter()
    try:
      seg = jax.block_until_ready(self.entry.segment_batch(keys, images, self.config,
                                                           **self.call_kwargs))
    except Exception as e:  # noqa: BLE001
      for it in items:
        self.recorder.fail(it.case, e)
      return
    seconds = (time.perf_counter() - t) / n
    seg = jax.device_get(seg)
    for i, it in enumerate(items):
      try:
        row = case_files.write_case(it.case, it.record, it.work.shape,
                                    seeds.case_result(seg, i, e), seconds + it.load_seconds,
                                    self.options, self.member_slugs,
                                    self.method.labels_are_object)
      except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        self.recorder.fail(it.case, e)
        continue
      self.recorder.done(row)

  def summary_extra(self, rows) -> Dict[str, Any]:
    return {}

  def finish(self, cases: Sequence[Case]) -> None:
    montage.write_montage(cases, self.load, self.options)


def run_dataset(cases: Sequence[Case], load: Callable[[Case], Record], config,
                options: RunOptions, method: Optional[registry.Method] = None, *,
                compiler_options: Optional[Mapping[str, Any]] = None,
                call_kwargs: Optional[Mapping[str, Any]] = None,
                run_info: Optional[Dict[str, Any]] = None,
                team: Optional[distributed.Team] = None,
                leave_team: bool = True) -> RunResult:
  """Segments every case not already done in `options.out_dir` with `method` (see the
  module docstring); `runner.execute` with the image driver.

  Args:
    cases, load: the data set (`data.datasets.list_dataset`).
    config: the method's config (a vote's `VoteConfig`).
    options: everything else about the run (`RunOptions`).
    method: a `registry.Method` (`registry.get_method(name)`, `MethodSpec.method`); None:
      SGSCN.
    compiler_options: for the method's `entry_points` (e.g. `comparison.FAST_COMPILE`).
    call_kwargs: passed to every `segment_batch` call: `batching`, `chunk_size`, `mesh`
      (methods that do not use them ignore them). A fitted method also gets `state=`.
    run_info: extra run.json entries (argv, dataset, ...).
    team, leave_team: a distributed run (`runner.execute`).

  Example (Otsu, a host method, on two synthetic images, without the object step):

  >>> import tempfile
  >>> from sgscn_jax import get_method
  >>> from sgscn_jax.data.datasets import list_dataset
  >>> cases, load = list_dataset("demo", None, demo_n=2, demo_size=32, seed=0)
  >>> otsu = get_method("otsu")
  >>> with tempfile.TemporaryDirectory() as out:
  ...   options = RunOptions(out_dir=out, objects=None, method_name="otsu")
  ...   result = run_dataset(cases, load, otsu.default_config, options, otsu)
  >>> result.summary["finished"], result.failures
  (2, [])
  """
  method = registry.get_method("sgscn") if method is None else method
  driver = ImageDriver(method, config, options, load, compiler_options=compiler_options,
                       call_kwargs=call_kwargs)
  return runner.execute(cases, driver, config, run_info=run_info, team=team,
                        leave_team=leave_team)
