"""Running a method over a folder of volumes, with the data-set runner's guarantees.

    volume file --(peek header: shape, spacing)--> memory plan (every case, before any runs)
      --(read, normalise; area-resample to the plan's working shape)--> working volume
      --(SGSCN "3d" or "slices", or a baseline on the voxels; inside the data set's
         foreground, `extra["valid"]`, where it has one)--> labels
      --(nearest neighbour back to the volume's shape)--> labels/<id>.nii.gz | .tif
         (the input's format and geometry), overlays/<id>.png (three orthogonal slices),
         history/<id>.csv, cases/<id>.json (last: the "done" marker)
    then cases/*.json --> results.csv, summary.json, summary.md

The guarantees (atomic files, the case JSON written last, a rerun skips done cases, each
case's key is `runner.case_key(seed, case_id)`, a failing case is recorded in failures.csv
and the run goes on) are `runner.execute`'s, shared with images: this is the volume
driver. Volumes run one at a time (a volume is a batch of its own; in slice mode its
slices are the batch).

Memory: every pending case is planned from its header (`memory.plan_volume`) before the
first one starts; a setting that cannot fit refuses the whole run with a
`memory.MemoryBudgetError` naming settings that would. The plan of each case is logged
(stderr) and stored in its row. Scores: the metrics of `metrics.all_metrics` for both
selection rules, HD95 in the unit of the voxel spacing (mm for NIfTI).

The foreground (`data.datasets.volume`: `foreground="otsu"` or a folder of masks; the
record's `extra["valid"]`, nearest-neighbour to the working grid) reaches the method: 3D
SGSCN through `volume.segment_volume(..., mask=)`, k-means through
`volume.masked.kmeans_in_mask`, and any method whose `segment_batch` takes `mask`
(Atropos, JULE) as that argument; another method clusters every voxel and the voxels
outside are then given label 0 (`volume.masked.labels_with_outside`). Labels are then 0
outside and 1..K inside.
"""

from __future__ import annotations

import dataclasses
import inspect
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

import jax
import numpy as np

from sgscn_jax import registry, volume
from sgscn_jax.core.loop import STOP_REASONS
from sgscn_jax.data import files, resize, volume_io
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.reporting import overlays
from sgscn_jax.running import case_files, results, runner, scoring
from sgscn_jax.running.runner import RunResult
from sgscn_jax.volume import masked, memory


@dataclasses.dataclass(frozen=True)
class VolumeOptions:
  """How a folder of volumes is run (everything but the method's own config).

  Attributes:
    out_dir: folder for every output; reruns with the same folder resume.
    seed: base seed; each case's key is `runner.case_key(seed, case_id)`.
    method_name: recorded in every row and the summary; also the method run when
      `run_volumes` is not handed one (a name in `registry.METHODS`).
    mode: "auto", "3d" or "slices" (SGSCN; baselines always run on the whole volume).
    factor: fixed downsampling factor, or None (auto).
    n_channels: fixed channels, or None (auto, at most the config's `n_channels`).
    memory_limit: bytes or e.g. "8G" a run may use; None: 80 % of MemAvailable.
    time_limit: optional estimated-compute budget per volume, seconds.
    consistent: slice mode: match labels between neighbouring slices.
    slice_axis: slice mode: the axis of the slices.
    overlay_rule: the selection rule drawn in overlays when a mask exists.
    objects: the mask-free object step's settings (`evaluation.objects.ObjectConfig`), or
      None: with it each volume gets `objects/<id>` (same format and geometry as its
      labels) and the `object` protocol's scores.
    overwrite: recompute a folder made with other settings instead of refusing it.
    foreground: the data set's foreground rule, recorded so that a folder is not resumed
      under another ("none", "otsu" or the folder of masks; `list_dataset(foreground=)`
      decides what the records carry).
  """
  out_dir: str
  seed: int = 0
  method_name: str = "sgscn"
  mode: str = "auto"
  factor: Optional[int] = None
  n_channels: Optional[int] = None
  memory_limit: Any = None
  time_limit: Optional[float] = None
  consistent: bool = True
  slice_axis: int = 0
  overlay_rule: str = "largest_overlap"
  objects: Optional[ObjectConfig] = None
  overwrite: bool = False
  foreground: str = "none"

  # `running.folder.check_settings`: every other option changes a volume's result (the
  # object too: volumes are not rescored on resume).
  OUTPUT_ONLY: ClassVar[tuple] = ("out_dir", "overlay_rule", "overwrite")


SGSCN = "sgscn"   # the method with a volume mode of its own (`volume.segment_volume`)


def plan_case(case: Case, method: registry.Method, config,
              options: VolumeOptions) -> memory.Plan:
  """The memory plan of one case from its file header (see `memory.plan_volume`)."""
  shape, c_in, spacing = volume_io.peek(case.image_path, case.extra.get("spacing"))
  if method.plan_memory is not None:  # the method's own memory model (JULE)
    return method.plan_memory(shape, c_in, config, spacing=spacing, factor=options.factor,
                              memory_limit=options.memory_limit, time_limit=options.time_limit)
  if method.name != SGSCN:  # another method: the voxels at the chosen resolution
    factor = options.factor or 1
    factors = memory.factors_for(spacing, factor)
    work = memory.factor_shape(shape, factors)
    return memory.Plan("3d", factor, factors, work, 0, 0,
                       memory.parse_bytes(options.memory_limit) if options.memory_limit
                       else int(memory.SAFETY * memory.available_bytes()), 0.0, "baseline")
  return memory.plan_volume(shape, c_in, spacing=spacing, mode=options.mode, factor=options.factor,
                            n_channels=options.n_channels, max_channels=config.n_channels,
                            n_conv=config.n_conv, iterations=config.iterations,
                            memory_limit=options.memory_limit, time_limit=options.time_limit)


def work_spacing(spacing, shape, work_shape):
  """Physical voxel size of the working grid: s_a n_a / m_a (None stays None)."""
  if spacing is None:
    return None
  return tuple(float(s) * n / m for s, n, m in zip(spacing, shape, work_shape))


def takes_mask(method: registry.Method) -> bool:
  """Whether `method.segment_batch` takes a foreground `mask=` itself (Atropos, JULE)."""
  try:
    return "mask" in inspect.signature(method.segment_batch).parameters
  except (TypeError, ValueError):
    return False


def run_method(method: registry.Method, key, work: np.ndarray, config, plan: memory.Plan,
               spacing, options: VolumeOptions, mask: Optional[np.ndarray] = None):
  """`method` on one working volume `[D, H, W, C]`, inside the foreground `mask`
  `[D, H, W]` bool where given (module docstring); a `Segmentation` (host arrays)."""
  if method.name == SGSCN:
    config = dataclasses.replace(config, n_channels=plan.n_channels)
    return jax.device_get(volume.segment_volume(
        key, work, config, mode=plan.mode, spacing=spacing, axis=options.slice_axis,
        consistent=options.consistent, mask=mask))
  if mask is not None and method.name == "kmeans":
    return masked.kmeans_in_mask(key, work, config, mask)
  # A host method with spacing (JULE) gets the working volume's voxel size.
  extra = {"spacing": spacing} if method.host and method.spacing and spacing else {}
  inside = mask is not None and takes_mask(method)
  if inside:
    extra["mask"] = mask[None]
  seg = method.segment_batch(key[None], work[None], config, **extra)
  seg = jax.device_get(jax.tree.map(lambda a: a[0], seg))
  if mask is not None and not inside:
    labels = masked.labels_with_outside(np.asarray(seg.labels), mask)
    seg = seg._replace(labels=labels, n_labels=np.int32(labels.max() + 1))
  return seg


def _finish(record: Record, case: Case, seg, plan: memory.Plan, work_shape, seconds: float,
            options: VolumeOptions) -> Dict[str, Any]:
  out = Path(options.out_dir)
  shape = record.image.shape[:3]
  labels = resize.labels_to_volume_shape(np.asarray(seg.labels), shape)
  geometry = record.extra["geometry"]
  volume_io.write_label_volume(
      out / "labels" / f"{record.case_id}{volume_io.label_suffix(case.image_path)}", labels,
      geometry)
  spacing = record.extra.get("spacing")
  pred = scoring.overlay_prediction(labels, record, options.overlay_rule)
  *shown, shown_spacing = volume_io.display_view(geometry, record.image, pred, record.mask,
                                                 spacing=spacing)
  files.write_png(out / "overlays" / f"{record.case_id}.png",
               overlays.orthogonal_overlay(*shown, spacing=shown_spacing))
  if seg.history is not None:
    case_files.write_history(out / "history" / f"{record.case_id}.csv", seg.history)
  row: Dict[str, Any] = {
      "case_id": record.case_id, "method": options.method_name, "mode": plan.mode,
      "depth": shape[0], "height": shape[1], "width": shape[2],
      "work_depth": work_shape[0], "work_height": work_shape[1], "work_width": work_shape[2],
      "factor": plan.factor, "n_channels": plan.n_channels,
      "estimated_mb": round(plan.estimated_bytes / 1e6, 1),
      "budget_mb": round(plan.budget_bytes / 1e6, 1),
      "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "spacing": "" if spacing is None else "x".join(f"{s:g}" for s in spacing),
      "unit": record.extra.get("unit") or ("" if spacing is None else "unknown"),
      "iterations": int(seg.iterations), "n_labels": int(seg.n_labels),
      "finite": bool(seg.finite), "seconds": round(seconds, 3),
  }
  row.update(scoring.collapse_fields(labels, record.case_id))
  if getattr(seg, "stop_reason", None) is not None and np.ndim(seg.stop_reason) == 0:
    row["stop_reason"] = STOP_REASONS[int(seg.stop_reason)]
  found = None
  if options.objects is not None:  # the mask-free object, in the input's format and geometry
    found = scoring.find_object(labels, record, options.objects)
    volume_io.write_label_volume(
        out / "objects" / f"{record.case_id}{volume_io.label_suffix(case.image_path)}",
        found.mask.astype(np.uint8), geometry)
  scoring.check_mask(record, case, row)
  scoring.add_scores(row, labels, record, found)
  results.write_case(out, row)
  return row


class VolumeDriver:
  """Volumes, each planned from its header before any runs, then one at a time."""

  def __init__(self, method: registry.Method, config, options: VolumeOptions,
               load: Callable[[Case], Record]):
    self.method, self.config, self.options, self.load = method, config, options, load
    self.plans: Dict[str, memory.Plan] = {}

  def case_cost(self, case: Case) -> int:
    shape, _, _ = volume_io.peek(case.image_path, case.extra.get("spacing"))
    return int(np.prod(shape))

  def prepare(self, cases: Sequence[Case], pending: Sequence[Case],
              failures: List[Dict[str, str]]) -> Dict[str, Any]:
    """Plans every pending case (a setting that cannot fit refuses the whole run)."""
    for case in pending:
      try:
        self.plans[case.case_id] = plan_case(case, self.method, self.config, self.options)
      except memory.MemoryBudgetError as e:
        raise memory.MemoryBudgetError(f"{case.case_id}: {e}") from None
      except Exception as e:  # noqa: BLE001 - unreadable header: recorded as a failure
        failures.append(runner.failure(case, e))
      else:
        print(f"plan {case.case_id}: {self.plans[case.case_id].describe()}", file=sys.stderr)
    return {"plans": {k: dataclasses.asdict(p) for k, p in self.plans.items()}}

  def run(self, pending: Sequence[Case], recorder: runner.Recorder) -> None:
    for case in pending:
      if case.case_id not in self.plans:
        continue
      plan = self.plans[case.case_id]
      start = time.perf_counter()
      try:
        record = self.load(case)
        work = resize.resize_volume(record.image, plan.work_shape)
        spacing = work_spacing(record.extra.get("spacing"), record.image.shape[:3],
                               plan.work_shape)
        mask = record.extra.get("valid")
        if mask is not None:
          mask = resize.labels_to_volume_shape(np.asarray(mask, bool), plan.work_shape)
        seg = run_method(self.method, runner.case_key(self.options.seed, case.case_id), work,
                         self.config, plan, spacing, self.options, mask)
        row = _finish(record, case, seg, plan, plan.work_shape, time.perf_counter() - start,
                      self.options)
      except Exception as e:  # noqa: BLE001 - any bad case is recorded, the run goes on
        recorder.fail(case, e)
        continue
      recorder.done(row)

  def summary_extra(self, rows) -> Dict[str, Any]:
    units = sorted({str(r.get("unit")) for r in rows if r.get("unit")})
    return {"hd95_unit": units[0] if len(units) == 1 else ("voxels" if not units else "mixed")}

  def finish(self, cases: Sequence[Case]) -> None:
    pass


def run_volumes(cases: Sequence[Case], load: Callable[[Case], Record], config,
                options: VolumeOptions, method: Optional[registry.Method] = None, *,
                run_info: Optional[Dict[str, Any]] = None) -> RunResult:
  """Segments every volume not already done in `options.out_dir` with `method` (a
  `registry.Method`; None: `registry.get_method(options.method_name)`), module docstring.

  Raises:
    MemoryBudgetError: a case's plan cannot fit (before any case runs).
  """
  method = registry.get_method(options.method_name) if method is None else method
  return runner.execute(cases, VolumeDriver(method, config, options, load), config,
                        run_info=run_info)
