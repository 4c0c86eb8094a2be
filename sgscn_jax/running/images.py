"""Running a method over a data set of 2D images (the image driver of `runner.execute`).

    cases --(load, check, resize to the bucket shape)--> per-bucket queues
          --(a full queue: one `method(keys, images, config)` call, i.e. one jit per bucket)-->
          labels --(back to the image's resolution, nearest neighbour)--> label map PNG
          --(selection rules, metrics)--> overlay PNG, history CSV, cases/<id>.json
    then  cases/*.json --> results.csv, summary.json, summary.md, montage.png

The guarantees (atomic files, resume, failures recorded, Ctrl-C, keys independent of
batching) are `runner.execute`'s. Here: partial batches are padded (with copies of their
last image, results discarded) to the batch size, so each bucket compiles once; with a
`team` (`sgscn_jax.running.distributed`) each process segments its share of the cases not
done, into the same `out_dir`, and process 0 merges once all shares are done.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, NamedTuple, Optional, Sequence

import imageio.v3 as iio
import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.baselines import method_vote
from sgscn_jax.core.batching import segment_batch
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import STOP_REASONS, check_image
from sgscn_jax.data import decode, files, hair, resize, speckle
from sgscn_jax.data.datasets import Case, Record, list_dataset
from sgscn_jax.evaluation import consensus, objects
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.reporting import overlays
from sgscn_jax.running import distributed, fitting, levels, results, runner
from sgscn_jax.volume import memory
from sgscn_jax.running.runner import RunResult, case_key

Method = Callable[[jax.Array, np.ndarray, Config], Any]  # -> Segmentation-like, batched


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
    standardise: the method sees each working image standardised (`decode.standardise`: zero
      mean, unit variance per channel) instead of its [0, 1] intensities; overlays and
      scores are unchanged. Off by default, as in the paper.
    objects: the mask-free object step's settings (`evaluation.objects.ObjectConfig`: the
      data set's kind of object), or None for no object: with it each case gets
      `objects/<id>.png`, the object's outline on its overlay (magenta) and the `object`
      protocol's scores.
    hair_removal: every image is read through `data.hair.remove_hair` (DullRazor-style dark
      line removal and inpainting, at the image's own resolution) before anything else:
      the method, the object step, overlays and montage all see the cleaned image. Off by
      default (measured: docs/OBJECTS.md).
    seeds_per_image: E > 1 runs each image with E keys (`seed_key`) in the same batch and
      fuses the E label maps (`evaluation.consensus`): the consensus is the case's label
      map, and `uncertainty/<id>.png` its per-pixel agreement (255 = all seeds agree). Each
      seed's own map is kept in `seed_labels/<id>_seed<e>.png`. With objects on, the
      case's object is the vote of the E seeds' objects (`consensus.vote_objects`; an even
      E's ties go to the consensus map's object), and `object_share/<id>.png` the share of
      seeds whose object holds each pixel (255 = all). A vote of methods
      (`baselines.method_vote`) is voted the same way, from its members' label maps
      (`member_labels/<id>_<member>.png`; ties: the first member's object).
    gt_clipped: None (the default) or a dilation radius r: every case is also scored under
      the INFLATED diagnostic protocol `gt_clipped` (the paper cluster multiplied by the
      ground truth dilated by a (2r+1)^2 square, S3-Net's published protocol).
    despeckle: the method's working image is de-speckled first (`data.speckle`: "none",
      "median", "nlm", "bilateral"); objects, overlays and scores see the image as read.
    overwrite: a folder whose finished cases were made with other result settings is
      recomputed (their records removed first) instead of refused (`running.folder`).
    fit_dir: a data-set method (`registry.Method.fit`, e.g. CUTS) is fitted on the images of
      this folder (read as `--dataset folder`, at the run's working size) instead of the
      run's own images; ignored by the other methods. The state is kept in
      `fitted/` (`running.fitting`) and reused on resume.
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
  objects: Optional[ObjectConfig] = None
  hair_removal: bool = False
  seeds_per_image: int = 1
  gt_clipped: Optional[int] = None
  overwrite: bool = False
  despeckle: str = "none"
  fit_dir: Optional[str] = None

  # How a resume treats each option (`running.folder.check_settings`); the rest, like the
  # method's config, are result settings: a resume with other values is refused.
  OUTPUT_ONLY: ClassVar[tuple] = ("out_dir", "overlay_rule", "montage_cases", "batch_size",
                                  "overwrite")
  RESCORED: ClassVar[tuple] = ("objects", "gt_clipped")   # redone from saved label maps


class Pending(NamedTuple):
  case: Case
  record: Record
  work: np.ndarray       # [h, w, C] float32 at the bucket shape
  load_seconds: float


def _finish_case(item: Pending, seg_i, seconds: float, options: RunOptions,
                 config: Any = None) -> Dict[str, Any]:
  """Writes one case's outputs; its JSON (the 'done' marker) last."""
  out = Path(options.out_dir)
  record = item.record
  labels = resize.labels_to_shape(np.asarray(seg_i.labels), record.image.shape[:2])
  members = None
  if getattr(seg_i, "members", None) is not None:   # E seeds or a vote's members: their maps
    members = [resize.labels_to_shape(np.asarray(m), record.image.shape[:2])
               for m in seg_i.members]
    for path, m in zip(_member_paths(out, record.case_id, len(members), config), members):
      files.write_label_map(path, m)
  found, vote, labels = _object_and_overlay(out, labels, record, options, members, config)
  files.write_label_map(out / "labels" / f"{record.case_id}.png", labels)
  if seg_i.history is not None:
    runner.write_history(out / "history" / f"{record.case_id}.csv", seg_i.history)
  row: Dict[str, Any] = {
      "case_id": record.case_id, "method": options.method_name,
      "height": record.image.shape[0], "width": record.image.shape[1],
      "work_height": item.work.shape[0], "work_width": item.work.shape[1],
      "iterations": int(seg_i.iterations), "n_labels": int(seg_i.n_labels),
      "finite": bool(seg_i.finite), "seconds": round(seconds + item.load_seconds, 3),
  }
  row.update(runner.collapse_fields(labels, record.case_id))
  hierarchy = levels.case_levels(seg_i, record.image.shape[:2])
  if hierarchy is not None:   # a method with levels (CUTS): kept, and the level oracles
    levels.write_levels(out, record.case_id, hierarchy)
    row.update(levels.oracle_fields(hierarchy, record, options.objects))
  if isinstance(config, method_vote.VoteConfig):   # the voted object's map; the members'
    row.update(n_labels=len(np.unique(labels)), members=" ".join(config.slugs),
               member_n_labels=" ".join(str(int(n)) for n in seg_i.member_n_labels),
               member_iterations=" ".join(str(int(n)) for n in seg_i.member_iterations))
  if getattr(seg_i, "stop_reason", None) is not None:
    row["stop_reason"] = STOP_REASONS[int(seg_i.stop_reason)]
  if getattr(seg_i, "agreement", None) is not None:  # E seeds fused: where they disagree
    agreement = resize.labels_to_shape(np.round(255 * seg_i.agreement).astype(np.int32),
                                       record.image.shape[:2]).astype(np.uint8)
    files.write_png(out / "uncertainty" / f"{record.case_id}.png", agreement)
    row.update(seeds=options.seeds_per_image,
               agreement_mean=round(float(seg_i.agreement.mean()), 5))
  row.update(_vote_fields(vote))
  norm = record.extra.get("normalisation") or {}
  row["intensity"] = "; ".join(str(norm[k]) for k in ("channels", "rule") if norm.get(k))
  for key in ("diagnosis", "diagnosis_name", "hair_fraction", "frame_fraction",
              "marks_fraction"):
    if record.extra.get(key) is not None:
      row[key] = record.extra[key]
  runner.check_mask(record, item.case, row)
  runner.add_scores(row, labels, record, found, options.gt_clipped)
  results.write_case(out, row)
  return row


def _seed_labels_path(out: Path, case_id: str, e: int) -> Path:
  return out / "seed_labels" / f"{case_id}_seed{e}.png"


def _member_labels_path(out: Path, case_id: str, slug: str) -> Path:
  return out / "member_labels" / f"{case_id}_{slug}.png"


def _member_paths(out: Path, case_id: str, count: int, config: Any) -> List[Path]:
  """Where the `count` members of a case keep their label maps: a vote's under
  `member_labels/` by member slug, E seeds' under `seed_labels/` by index."""
  if isinstance(config, method_vote.VoteConfig):
    return [_member_labels_path(out, case_id, slug) for slug in config.slugs]
  return [_seed_labels_path(out, case_id, e) for e in range(count)]


def _saved_vote_members(out: Path, case_id: str,
                        config: method_vote.VoteConfig) -> List[np.ndarray]:
  """The members' label maps a vote of methods saved for a case, in member order."""
  paths = [_member_labels_path(out, case_id, slug) for slug in config.slugs]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    raise method_vote.VoteError(f"{case_id}: the vote's member label maps are missing "
                                f"({', '.join(missing)}); rerun with --overwrite")
  return [np.asarray(iio.imread(p)).astype(np.int64) for p in paths]


def _saved_members(out: Path, case_id: str) -> Optional[List[np.ndarray]]:
  """The seeds' own label maps of a consensus case, if they were saved."""
  members = []
  while _seed_labels_path(out, case_id, len(members)).exists():
    members.append(np.asarray(iio.imread(_seed_labels_path(out, case_id, len(members))))
                   .astype(np.int64))
  return members or None


def _vote_fields(vote: Optional[consensus.ObjectVote]) -> Dict[str, Any]:
  """The row's record of how much the seeds' objects agree (nothing without a vote)."""
  if vote is None:
    return {}
  return {"object_agreement_mean": round(float(vote.agreement.mean()), 5)}


def voted_object(labels: np.ndarray, members: Sequence[np.ndarray], record: Record,
                 config: ObjectConfig, *, first_breaks_ties: bool = False) -> tuple:
  """(FoundObject, ObjectVote): the vote of the members' objects (`consensus.vote_objects`),
  ties to the object of the consensus map `labels` (E seeds) or, with `first_breaks_ties`
  (a vote of methods, whose `labels` are not used), to the first member's object."""
  each = [runner.find_object(m, record, config) for m in members]
  if first_breaks_ties:
    tie, what = each[0], f"methods' objects (ties: the first member's object, {each[0].reason})"
    seconds = sum(f.seconds for f in each)
  else:
    tie = runner.find_object(labels, record, config)
    what = f"seeds' objects (ties: the consensus map's object, {tie.reason})"
    seconds = tie.seconds + sum(f.seconds for f in each)
  vote = consensus.vote_objects(np.stack([f.mask for f in each]), tie=tie.mask)
  reason = f"vote of {len(each)} {what}"
  return runner.FoundObject(vote.mask, reason, seconds, tie.config_tag), vote


def _object_and_overlay(out: Path, labels: np.ndarray, record: Record, options: RunOptions,
                        members: Optional[Sequence[np.ndarray]] = None,
                        config: Any = None) -> tuple:
  """The mask-free object (written to objects/<id>.png) when `options.objects` is set (with
  `members`, the seeds' own label maps or a vote's members', their objects' vote, and
  object_share/<id>.png), and the overlay (selection rule yellow, ground truth cyan, object
  magenta). For a vote of methods (`config` a `VoteConfig`) the case's label map becomes
  the 2-label map of the voted object (1 inside), so the paper protocols score the vote.
  Returns (FoundObject or None, the members' `ObjectVote` or None, the case's labels)."""
  found = vote = None
  voting = isinstance(config, method_vote.VoteConfig)
  if voting:
    method_vote.check_options(config, objects=options.objects)
  if options.objects is not None:
    if members:
      found, vote = voted_object(labels, members, record, options.objects,
                                 first_breaks_ties=voting)
      files.write_png(out / "object_share" / f"{record.case_id}.png",
                      np.round(255 * vote.share).astype(np.uint8))
    else:
      found = runner.find_object(labels, record, options.objects)
    files.write_png(out / "objects" / f"{record.case_id}.png", found.mask.astype(np.uint8) * 255)
  if voting:
    labels = found.mask.astype(np.int32)
  pred = runner.overlay_prediction(labels, record, options.overlay_rule)
  files.write_png(out / "overlays" / f"{record.case_id}.png",
                  overlays.overlay(record.image, pred, record.mask,
                                   obj=None if found is None else found.mask))
  return found, vote, labels


SIZES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 64)


def check_memory(pending: Sequence[Case], config, options: RunOptions) -> None:
  """Refuses, before anything runs, an SGSCN working size whose estimated peak memory
  (`volume.memory.estimate_bytes`, the calibrated model, for one image: on CPU the images
  of a batch run one after the other, on accelerators they are chunked to free memory) is
  over `memory.SAFETY` x the memory available; the error names the sizes that would fit.
  Only SGSCN's network is modelled; other methods are not checked."""
  if not isinstance(config, Config):
    return
  budget = int(memory.SAFETY * memory.available_bytes())
  estimate = lambda h, w: memory.estimate_bytes((1, h, w), 3, config.n_channels, mode="slices",
                                                n_conv=config.n_conv)
  seen = set()
  for case in pending:
    native = distributed.native_shape(case)
    if native is None:
      continue
    work = resize.bucket_shape(resize.working_shape(native, options.size), options.bucket_multiple)
    if work in seen:
      continue
    seen.add(work)
    need = estimate(*work)
    if need <= budget:
      continue
    fits = []
    for size in SIZES:
      shape = resize.bucket_shape(resize.working_shape(native, size), options.bucket_multiple)
      if estimate(*shape) <= budget:
        fits.append(f"--size {size} ({shape[0]}x{shape[1]}, ~{estimate(*shape) / 1e9:.1f} GB)")
      if len(fits) == 2:
        break
    raise memory.MemoryBudgetError(
        f"{case.case_id} ({case.image_path}): refusing to start: working size "
        f"{work[0]}x{work[1]} with {config.n_channels} channels needs about "
        f"{need / 1e9:.1f} GB, over the {budget / 1e9:.1f} GB memory budget. Sizes that "
        f"would fit: {'; '.join(fits) if fits else 'none of ' + str(SIZES)}")


def without_hair(load: Callable[[Case], Record]) -> Callable[[Case], Record]:
  """`load` followed by `hair.remove_hair` on the image; the hair mask's share of the image
  is kept in `Record.extra["hair_fraction"]`."""
  def load_without_hair(case: Case) -> Record:
    record = load(case)
    found = hair.hair_mask(record.image)
    image = hair.remove_hair(record.image, mask=found).astype(np.float32)
    return record._replace(image=image, extra=dict(record.extra,
                                                   hair_fraction=float(found.mean())))
  return load_without_hair


def _needs(row: Dict[str, Any], options: RunOptions) -> bool:
  if "largest_overlap.dice" in row and "paper_fill.dice" not in row:
    return True
  if options.gt_clipped is not None and "largest_overlap.dice" in row and (
      "gt_clipped.dice" not in row):
    return True
  return options.objects is not None and (
      row.get("object_version") != objects.VERSION
      or row.get("object_config") != objects.config_tag(options.objects))


def complete_protocols(cases: Sequence[Case], load: Callable[[Case], Record],
                       options: RunOptions, config: Any = None) -> int:
  """Adds the protocols a finished case lacks (paper+fill; the object, its PNG and overlay
  when `options.objects` is set, also when it was found by another `objects.VERSION` or
  other object settings, `objects.config_tag`) from
  its saved label map; returns how many were updated.
  A run made before these protocols existed is upgraded in place when it is resumed.
  A vote of methods (`config` a `VoteConfig`) votes again from its members' saved label
  maps and rewrites the case's label map, the voted object's."""
  out, upgraded = Path(options.out_dir), 0
  voting = isinstance(config, method_vote.VoteConfig)
  for case in cases:
    row = results.read_case(out, case.case_id)
    path = out / "labels" / f"{case.case_id}.png"
    if row is None or not path.exists() or not _needs(row, options):
      continue
    record = load(case)
    labels = np.asarray(iio.imread(path)).astype(np.int64)
    members = (_saved_vote_members(out, case.case_id, config) if voting
               else _saved_members(out, case.case_id))
    found, vote, labels = _object_and_overlay(out, labels, record, options, members, config)
    if voting:
      files.write_label_map(path, labels)
      row["n_labels"] = len(np.unique(labels))
    row.update(_vote_fields(vote))
    runner.add_scores(row, labels, record, found, options.gt_clipped)
    results.write_case(out, row)
    upgraded += 1
  return upgraded


def _index(seg, i):
  return jax.tree.map(lambda a: a[i], seg)


def seed_key(seed: int, case_id: str, index: int, count: int):
  """The key of seed `index` of `count` for one case: the case's own key when `count` is 1
  (so a single-seed run is today's run), else `fold_in(case_key, index)`."""
  key = case_key(seed, case_id)
  return key if count == 1 else jax.random.fold_in(key, index)


class Fused(NamedTuple):
  """One case's result from E seeds: the consensus labels and agreement; the run statistics
  (iterations, history, stop reason) of the first seed; finite only if every seed was."""
  labels: np.ndarray
  n_labels: int
  iterations: int
  finite: bool
  history: Any
  stop_reason: Any
  agreement: np.ndarray
  members: np.ndarray    # [E, *spatial] each seed's own label map


def _fuse(seg) -> Fused:
  fused = consensus.consensus(np.asarray(seg.labels))
  first = _index(seg, 0)
  return Fused(fused.labels, int(fused.labels.max()) + 1, int(first.iterations),
               bool(np.all(seg.finite)), first.history, getattr(first, "stop_reason", None),
               fused.agreement, np.asarray(seg.labels))


class ImageDriver:
  """2D images in bucketed batches: one `method` call per full bucket queue."""

  def __init__(self, method: Method, config, options: RunOptions,
               load: Callable[[Case], Record]):
    self.method, self.config, self.options = method, config, options
    self.load = without_hair(load) if options.hair_removal else load
    self.queues: Dict[tuple, List[Pending]] = {}
    self.recorder: Optional[runner.Recorder] = None
    self.fitted = registry.fitted_method(config)   # a data-set method (fit first), or None
    self.cases: List[Case] = []

  def case_cost(self, case: Case) -> int:
    return distributed.case_cost(case, self.options.size, self.options.bucket_multiple)

  def prepare(self, cases, pending, failures) -> Dict[str, Any]:
    """Refuses a working size that cannot fit in memory (`check_memory`), before anything
    runs; finished cases scored before a protocol existed (no `paper_fill` or, with
    objects on, no `object` columns) are brought up to date from their saved label maps."""
    check_memory(pending, self.config, self.options)
    method_vote.check_options(self.config, objects=self.options.objects,
                              seeds_per_image=self.options.seeds_per_image)
    if self.fitted is not None and self.options.seeds_per_image != 1:
      raise ValueError(f"{self.fitted.name}: a data-set method takes no --seeds_per_image")
    self.cases = list(cases)
    done = [c for c in cases if c.case_id not in {p.case_id for p in pending}]
    upgraded = complete_protocols(done, self.load, self.options, self.config)
    return {"upgraded_cases": upgraded} if upgraded else {}

  def run(self, pending: Sequence[Case], recorder: runner.Recorder) -> None:
    self.recorder = recorder
    if self.fitted is not None and pending:   # a data-set method: fit first
      state = fitting.load_or_fit(self.fitted, self.config, self.fit_images,
                                  Path(self.options.out_dir), self.options.seed,
                                  fit_dir=self.options.fit_dir, overwrite=self.options.overwrite)
      self.method = functools.partial(self.method, state=state)
    for case in pending:
      self.add(case)
    for shape in list(self.queues):
      self.flush(shape)

  def working_image(self, record: Record, case: Case) -> np.ndarray:
    """The method's input: the image at its bucket shape, de-speckled and standardised as
    the options say."""
    check_image(record.image, name=f"{case.case_id} ({case.image_path})")
    shape = resize.bucket_shape(resize.working_shape(record.image.shape, self.options.size),
                                self.options.bucket_multiple)
    work = resize.resize_image(record.image, shape)
    if self.options.despeckle != "none":
      work = speckle.despeckle(work, self.options.despeckle)
    if self.options.standardise:
      work = decode.standardise(work)
    return work

  def fit_images(self) -> tuple:
    """(ids, working images) a data-set method is fitted on: every case of the run (done
    or not), or the images of `options.fit_dir`."""
    cases, load = self.cases, self.load
    if self.options.fit_dir is not None:
      cases, load = list_dataset("folder", self.options.fit_dir)
      load = without_hair(load) if self.options.hair_removal else load
    works = [np.asarray(self.working_image(load(c), c), np.float32) for c in cases]
    return [c.case_id for c in cases], works

  def add(self, case: Case) -> None:
    t = time.perf_counter()
    try:
      record = self.load(case)
      work = self.working_image(record, case)
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
      seg = jax.block_until_ready(self.method(keys, images, self.config))
    except Exception as e:  # noqa: BLE001
      for it in items:
        self.recorder.fail(it.case, e)
      return
    seconds = (time.perf_counter() - t) / n
    seg = jax.device_get(seg)
    for i, it in enumerate(items):
      try:
        one = _index(seg, i) if e == 1 else _fuse(jax.tree.map(lambda a: a[i * e:(i + 1) * e], seg))
        row = _finish_case(it, one, seconds, self.options, self.config)
      except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        self.recorder.fail(it.case, e)
        continue
      self.recorder.done(row)

  def summary_extra(self, rows) -> Dict[str, Any]:
    return {}

  def finish(self, cases: Sequence[Case]) -> None:
    _montage(cases, self.load, self.options)


def _montage(cases: Sequence[Case], load: Callable[[Case], Record], options: RunOptions) -> None:
  out = Path(options.out_dir)
  rows = []
  for case in cases[: options.montage_cases]:
    path = out / "labels" / f"{case.case_id}.png"
    row = results.read_case(out, case.case_id)
    if row is None or not path.exists():
      continue
    record = load(case)
    labels = np.asarray(iio.imread(path)).astype(np.int64)
    object_path = out / "objects" / f"{case.case_id}.png"
    if object_path.exists():  # the answer a user gets: the mask-free object
      pred, protocol = np.asarray(iio.imread(object_path)) > 0, "object"
    else:
      pred = runner.overlay_prediction(labels, record, options.overlay_rule)
      protocol = options.overlay_rule
    dsc = row.get(f"{protocol}.dice")
    title = case.case_id + ("" if dsc is None or math.isnan(dsc) else f"  DSC {100 * dsc:.1f}")
    agreement_path = out / "uncertainty" / f"{case.case_id}.png"
    agreement = np.asarray(iio.imread(agreement_path)) if agreement_path.exists() else None
    share_path = out / "object_share" / f"{case.case_id}.png"
    if object_path.exists() and share_path.exists():   # seeds' objects voted: their agreement
      share = np.asarray(iio.imread(share_path)).astype(np.int32)
      agreement = np.maximum(share, 255 - share).astype(np.uint8)
    rows.append((title, record.image, record.mask, pred, labels, agreement))
  if rows:
    height = min(256, max(r[1].shape[0] for r in rows))
    header = "object" if (out / "objects").is_dir() else "prediction"
    files.write_png(out / "montage.png",
                    overlays.montage(rows, panel_height=height, prediction_header=header))


def run_dataset(cases: Sequence[Case], load: Callable[[Case], Record], config,
                options: RunOptions, method: Method = segment_batch,
                run_info: Optional[Dict[str, Any]] = None,
                team: Optional[distributed.Team] = None,
                leave_team: bool = True) -> RunResult:
  """Segments every case not already done in `options.out_dir` (`runner.execute` with the
  image driver; `team`, `leave_team` as there); see the module docstring."""
  return runner.execute(cases, ImageDriver(method, config, options, load), config,
                        run_info=run_info, team=team, leave_team=leave_team)
