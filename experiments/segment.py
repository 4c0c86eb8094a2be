r"""Segment a data set with SGSCN or any registered method, named in the method grammar
(docs/USAGE.md: --method s3net, kmeans:5, iic:k=4,steps=100, a vote of methods' objects
vote:sgscn+kmeans:5+otsu_blue; a user's method with --methods_module) and score it.

With no flags it segments the embedded demo (synthetic lesion images the project
generates) into runs/demo:

  python -m experiments.segment
  python -m experiments.segment --dataset ph2 --data_dir ../shared/data/PH2 --out_dir runs/ph2
  python -m experiments.segment --dataset folder --images my_images/ [--masks my_masks/ \
      --mask_pattern '{stem}_mask.png']
  python -m experiments.segment --dataset volume --images my_volumes/ [--masks my_masks/] \
      [--volume_mode auto|3d|slices --memory_limit 8G --factor 2 --spacing 2,0.5,0.5]

Several devices in one process: each batch is sharded over them (`--shard`, on by default).
Several processes (`--distributed`, or the explicit `--coordinator_address`,
`--num_processes`, `--process_id`): each segments its share into the same `--out_dir` and
process 0 writes the merged summary; see docs/DISTRIBUTED.md.

This file only turns flags into a `Config` and `RunOptions`; the work is
`sgscn_jax.running.images.run_dataset`. Exit status 1 if any case failed (see failures.csv),
3 if a process of a distributed run died before finishing its share (rerun to complete).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import app
from absl import flags

import jax

from sgscn_jax import Config, registry
from sgscn_jax.errors import UserError
from sgscn_jax.baselines import method_vote
from sgscn_jax.core import sharding
from sgscn_jax.core.config import parse_schedule
from sgscn_jax.reporting import console
from sgscn_jax.data.datasets import (DATASETS, despeckle_prior, list_dataset, object_prior,
                                    sgscn_prior, standardise_prior)
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import distributed
from sgscn_jax.running import images as image_runs
from sgscn_jax.running import volumes
from sgscn_jax.volume import memory

from experiments import methods_flag  # --methods_module

FLAGS = flags.FLAGS
METHOD_NAMES = tuple(n for n in registry.method_names() if n != method_vote.NAME)
flags.DEFINE_string("method", "sgscn",
                    f"Segmentation method, in the method grammar ({registry.GRAMMAR}); "
                    f"methods: {', '.join(METHOD_NAMES)}, and vote:A+B+C, a per-pixel majority "
                    "of the members' objects (ties: the first member's). docs/USAGE.md.")
flags.DEFINE_enum("batching", "auto", ["auto", "vmap", "sequential"],
                  "SGSCN batches: vmap, one after the other, or auto (sequential on CPU, where "
                  "it measured faster; vmap in memory-sized chunks on accelerators).")
flags.DEFINE_integer("chunk_size", None, "With vmap: images per vmapped chunk (default: as many "
                     "as fit in the memory available).")
flags.DEFINE_integer("k", None, "Older form of --method NAME:K (number of clusters).")
flags.DEFINE_list("method_options", [], "Older form of --method NAME:FIELD=VALUE,...: fields "
                  "of the method's config, e.g. --method jule --method_options patch_size=5.")
flags.DEFINE_enum("dataset", "demo", list(DATASETS), "Data-set layout.")
flags.DEFINE_string("data_dir", None, "Data-set folder (not needed for demo).")
flags.DEFINE_string("images", None, "folder: the images folder (default: data_dir).")
flags.DEFINE_string("masks", None, "folder: the masks folder (none: no scores).")
flags.DEFINE_string("mask_pattern", "{stem}.*", "folder: mask file name for an image stem.")
flags.DEFINE_string("out_dir", None, "Output folder (default runs/<dataset>); a rerun with the "
                    "same settings resumes; other settings are refused (see --overwrite).")
flags.DEFINE_bool("overwrite", False, "Recompute the cases of an --out_dir made with other "
                  "settings (their records are removed first) instead of refusing it.")
flags.DEFINE_string("size", "auto",
                    "Working size: 'native', an int (long side), 'HxW', or 'auto' "
                    "(native for demo, 256 otherwise).")
flags.DEFINE_integer("bucket", 16, "Working shapes are rounded to multiples of this.")
flags.DEFINE_integer("batch_size", 0, "Images per batch (one compiled call); 0: 1 on CPU, "
                     "where images run one after the other anyway and the progress bar then "
                     "moves per image, 4 on accelerators.")
flags.DEFINE_bool("standardise", False,
                  "2D images: feed each working image standardised (zero mean, unit variance "
                  "per channel) instead of [0, 1], as volumes always are. Default: the "
                  "data set's for the method (lung_ct: on for s3net, which collapses on its "
                  "[0, 1] slices), else off (the paper).")
flags.DEFINE_integer("limit", None, "Only the first N cases (by id).")
flags.DEFINE_integer("seed", 0, "Base seed (each case's key also depends on its id).")
flags.DEFINE_integer("iterations", Config.iterations, "Maximum iterations per image.")
flags.DEFINE_float("lr", Config.learning_rate, "SGD learning rate (default: 0.1, or the "
                  "paper's per data set: ultrasound 0.05).")
flags.DEFINE_float("momentum", Config.momentum, "SGD momentum.")
flags.DEFINE_integer("min_labels", Config.min_labels, "Early stop at this many labels.")
flags.DEFINE_bool("early_stop", Config.early_stop, "Stop each image by --stop_rule (else run "
                  "--iterations).")
flags.DEFINE_enum("stop_rule", Config.stop_rule, ["min_labels", "stable", "either"],
                  "min_labels (published): stop at --min_labels labels; stable: stop once at "
                  "most --stable_fraction of the pixels change label for --stable_iterations "
                  "iterations in a row; either: the first of the two.")
flags.DEFINE_float("stable_fraction", Config.stable_fraction, "See --stop_rule.")
flags.DEFINE_integer("stable_iterations", Config.stable_iterations, "See --stop_rule.")
flags.DEFINE_integer("n_channels", Config.n_channels, "Network channels (max clusters).")
flags.DEFINE_integer("n_conv", Config.n_conv, "3x3 conv blocks.")
flags.DEFINE_enum("padding", Config.padding, ["zeros", "reflect"],
                  "Border handling of the 3x3 convolutions: zeros (published) or reflect.")
flags.DEFINE_string("schedule", "", "Coarse-to-fine schedule: 'scale:n,...' runs n iterations "
                    "at each scale first, the rest at full resolution (e.g. 0.5:30); empty: flat.")
_WEIGHTS = dict(Config().loss_weights)
flags.DEFINE_float("w_ce", _WEIGHTS["cross_entropy"], "Weight of L_ce.")
flags.DEFINE_float("w_ss", _WEIGHTS["sparse_spatial"], "Weight of L_ss.")
flags.DEFINE_float("w_cc", _WEIGHTS["context_consistency"], "Weight of L_cc.")
flags.DEFINE_float("w_s", None, "Weight of S3-Net's edge-aware spatial loss L_S "
                   "(edge_aware_spatial; default: the method's: s3net 4, sgscn none).")
flags.DEFINE_float("w_at", None, "Weight of S3-Net's affine transformation consistency L_AT "
                   "(default: the method's: s3net 0.2, sgscn none).")
flags.DEFINE_enum("at_variant", None, ["kl", "ce"],
                  "L_AT: symmetric KL of the softmaxes (kl, s3net's default) or cross-entropy "
                  "against the warped pseudo-labels (ce).")
flags.DEFINE_float("deform_bound", None, "S3-Net's deformable conv: offsets bounded to [-R, R], "
                   "R = this value (the fast form, a departure: docs/S3NET.md); 0 = the exact "
                   "v1 (unbounded offsets); default: the method's.")
flags.DEFINE_integer("gt_clipped", None,
                     "DIAGNOSTIC, INFLATED scores: also score S3-Net's published protocol, the "
                     "paper prediction multiplied by the ground truth dilated by a "
                     "(2r+1)x(2r+1) square, r = this value (protocol gt_clipped). Never a "
                     "result: it deletes false positives with the answer key.")
flags.DEFINE_enum("selection", "largest_overlap", ["largest_overlap", "central"],
                  "Rule drawn in overlays (the summary reports both).")
flags.DEFINE_bool("objects", True, "Find the mask-free object of every label map (objects/, the "
                  "'object' protocol).")
flags.DEFINE_enum("object_profile", None, ["lesion", "lungs", "vessels"],
                  "What the object is (default: the data set's prior, e.g. ph2 lesion, lung_ct "
                  "lungs, drive vessels; folder lesion).")
flags.DEFINE_enum("object_polarity", None, ["auto", "dark", "bright"],
                  "Which side of the region hierarchy is the object (default: the data set's).")
flags.DEFINE_integer("regions", None, "The hierarchy level (number of regions) the object is "
                     "found at (default: every cluster, the finest level; 2 the coarsest).")
flags.DEFINE_bool("object_pieces", False, "The object step decides per connected piece of a "
                  "cluster, not per cluster (docs/OBJECTS.md: +0.4 to +1.2 DSC on PH2, not "
                  "the default).")
flags.DEFINE_integer("object_rim", None, "Lesions: the object grows into its side's pixels "
                     "within this many pixels (at 256 px) after the cluster-based rule "
                     "(default 8, docs/OBJECTS.md; 0 = off).")
flags.DEFINE_string("object_channel", None, "The object step's channel: auto (default: the most "
                    "bimodal in the central field), 0, 1, 2 (an image channel; 2 = blue) or pc1.")
flags.DEFINE_integer("seeds_per_image", 1, "Run each image with this many seeds in one batch and "
                     "fuse them: a consensus label map and an agreement map (uncertainty/).")
flags.DEFINE_enum("despeckle", None, ["none", "median", "nlm", "bilateral"],
                  "De-speckle the method's working image first (default: the data set's, "
                  "docs/ULTRASOUND.md; none everywhere but ultrasound).")
flags.DEFINE_string("fit_dir", None, "A data-set method (cuts): fit it on the images of this "
                    "folder instead of the run's images (the fitted state is kept in "
                    "<out_dir>/fitted/ and reused on resume).")
flags.DEFINE_string("fitted_from", None, "A data-set method (distil, cuts): use the state "
                    "fitted in this run folder (<dir>/fitted/) instead of fitting; refused "
                    "when it was fitted with other settings.")
flags.DEFINE_bool("hair_removal", False, "Remove dark hairs (DullRazor-style) from every image "
                  "before segmenting it (dermoscopy; off by default: docs/OBJECTS.md).")
flags.DEFINE_integer("demo_n", 4, "demo: number of synthetic images.")
flags.DEFINE_integer("demo_size", 128, "demo: image side.")
flags.DEFINE_integer("montage", 6, "Cases in montage.png.")
# Volumes (--dataset volume).
flags.DEFINE_enum("volume_mode", "auto", ["auto", "3d", "slices"],
                  "volume: 3D SGSCN, slice by slice, or chosen by memory.")
flags.DEFINE_integer("factor", None, "volume: downsampling factor (default: chosen by memory).")
flags.DEFINE_string("memory_limit", None, "volume: memory a run may use, e.g. 8G "
                    "(default: 80% of MemAvailable). Channels (default: auto, at most "
                    "--n_channels) are fixed by passing --n_channels.")
flags.DEFINE_float("time_limit", None, "volume: estimated compute budget per volume, seconds.")
flags.DEFINE_string("spacing", None, "volume: dz,dy,dx for files that state no voxel size.")
flags.DEFINE_bool("consistent_labels", True, "volume, slice mode: match labels between slices.")
flags.DEFINE_integer("slice_axis", 0, "volume, slice mode: the axis of the slices.")
flags.DEFINE_string("foreground", "none",
                    "volume: where methods cluster and scores count: none (every voxel), "
                    "otsu (each volume's own: Otsu, large components, holes filled; "
                    "docs/VOLUMES.md) or a folder of foreground masks (one per volume, same "
                    "stem). Outside it the labels are 0.")
flags.DEFINE_bool("shard", True, "Shard each batch over this process's devices when it has "
                  "several (the batch size is rounded up to a multiple of their count).")
flags.DEFINE_bool("distributed", False,
                  "Be one process of a jax.distributed run: settings from the three flags "
                  "below where given, else auto-detected by JAX (SLURM, Open MPI, Cloud TPU, "
                  "Kubernetes).")
flags.DEFINE_string("coordinator_address", None,
                    "jax.distributed: host:port of process 0 (implies --distributed).")
flags.DEFINE_integer("num_processes", None,
                     "jax.distributed: number of processes (implies --distributed).")
flags.DEFINE_integer("process_id", None,
                     "jax.distributed: this process, 0..num_processes-1 (implies --distributed).")
flags.DEFINE_integer("heartbeat_timeout", 100,
                     "jax.distributed: seconds without heartbeats before a process counts as "
                     "dead (process 0 then reports its unfinished cases).")


def parse_size(text: str, dataset: str, method: str = "sgscn"):
  """--size: 'auto' is native for the demo, else the method's `working_size` (s3net
  256x256) or 256 on the long side (a vote's members share one size: 256)."""
  if text == "auto":
    if dataset == "demo":
      return None
    registered = registry.METHODS.get(method)   # None for a vote's name (its slug)
    size = None if registered is None else registered.working_size
    return 256 if size is None else size
  if text == "native":
    return None
  if "x" in text:
    h, w = text.lower().split("x")
    return (int(h), int(w))
  return int(text)


def config_from_flags() -> Config:
  """SGSCN's `Config` from the flags; where a flag is not given, the data set's published
  setting (`datasets.sgscn_prior`, e.g. ultrasound's learning rate) before the default."""
  lr = FLAGS.lr if FLAGS["lr"].present else sgscn_prior(FLAGS.dataset).get("learning_rate",
                                                                           FLAGS.lr)
  return s3net_loss_flags(Config(
      n_channels=FLAGS.n_channels, n_conv=FLAGS.n_conv, learning_rate=lr,
      momentum=FLAGS.momentum, iterations=FLAGS.iterations, min_labels=FLAGS.min_labels,
      early_stop=FLAGS.early_stop, padding=FLAGS.padding, stop_rule=FLAGS.stop_rule,
      stable_fraction=FLAGS.stable_fraction, stable_iterations=FLAGS.stable_iterations,
      schedule=parse_schedule(FLAGS.schedule),
      loss_weights=(("cross_entropy", FLAGS.w_ce), ("sparse_spatial", FLAGS.w_ss),
                    ("context_consistency", FLAGS.w_cc))))


_AT_TERMS = ("transform_consistency_kl", "transform_consistency_ce")


def s3net_loss_flags(config: Config) -> Config:
  """`config` with --w_s, --w_at and --at_variant applied where given (L_AT keeps its weight
  when only the variant changes)."""
  weights = dict(config.loss_weights)
  if FLAGS.w_s is not None:
    weights["edge_aware_spatial"] = FLAGS.w_s
  at = sum(weights.get(name, 0.0) for name in _AT_TERMS)
  old = next((n[-2:] for n in _AT_TERMS if n in weights), "kl")
  at = at if FLAGS.w_at is None else FLAGS.w_at
  term = f"transform_consistency_{FLAGS.at_variant or old}"
  # L_AT keeps its place among the terms, so the preset without flags is the preset itself
  # (the same run.json as reproduce_tables writes for it).
  ordered = {}
  for name, weight in list(weights.items()) + [(term, at)]:
    if name in _AT_TERMS:
      if at:
        ordered.setdefault(term, at)
    else:
      ordered[name] = weight
  return dataclasses.replace(config, loss_weights=tuple(ordered.items()))


# Config field -> flag, for methods whose config is a `Config` preset (s3net).
_CONFIG_FLAGS = {"n_channels": "n_channels", "n_conv": "n_conv", "learning_rate": "lr",
                 "momentum": "momentum", "iterations": "iterations", "min_labels": "min_labels",
                 "early_stop": "early_stop", "padding": "padding", "stop_rule": "stop_rule",
                 "stable_fraction": "stable_fraction", "stable_iterations": "stable_iterations"}


def preset_from_flags(base: Config) -> Config:
  """A `Config` preset (e.g. s3net's) with the SGSCN flags given on the command line."""
  config = dataclasses.replace(base, **{field: FLAGS[flag].value
                                        for field, flag in _CONFIG_FLAGS.items()
                                        if FLAGS[flag].present})
  if FLAGS.deform_bound is not None:
    config = dataclasses.replace(config, deform_offset_bound=FLAGS.deform_bound or None)
  weights = dict(config.loss_weights)
  for name, flag in (("cross_entropy", "w_ce"), ("sparse_spatial", "w_ss"),
                     ("context_consistency", "w_cc")):
    if FLAGS[flag].present:
      weights[name] = FLAGS[flag].value
  return s3net_loss_flags(dataclasses.replace(config, loss_weights=tuple(weights.items())))


def _config_of(method) -> object:
  """A registered method's config for this run: SGSCN's from the SGSCN flags, a preset of
  it (s3net) with the flags given, another method's registered default."""
  if method.name == "sgscn":
    return config_from_flags()
  if isinstance(method.default_config, Config):
    return preset_from_flags(method.default_config)
  return method.default_config


def spec_from_flags() -> registry.MethodSpec:
  """--method in the registry's grammar (`registry.GRAMMAR`: kmeans:5,
  iic:k=4,steps=100, vote:sgscn+kmeans:5+otsu_blue), with the older --k and
  --method_options folded into it (`--method kmeans --k 5` is `--method kmeans:5`)."""
  spec = registry.parse_method(FLAGS.method)
  extra = []
  if FLAGS.k is not None:
    if spec.members:
      raise registry.MethodSpecError(f"--k with --method {FLAGS.method}: give each member of "
                                     "a vote its own k, e.g. vote:kmeans:5+otsu_blue")
    extra.append(f"k={FLAGS.k}")
  extra += [item for item in FLAGS.method_options if item.strip()]
  if extra:
    if spec.members:
      raise registry.MethodSpecError(f"--method_options with --method {FLAGS.method}: give "
                                     "each member its own fields, e.g. "
                                     "vote:iic:k=4,steps=100+otsu_blue")
    pairs = tuple((f.strip(), v.strip()) for f, _, v in (item.partition("=") for item in extra))
    spec = registry.parse_method(str(registry.MethodSpec(spec.name, spec.options + pairs)))
  return spec


def run_name(spec: registry.MethodSpec) -> str:
  """The run's method name (rows, summaries, the default --out_dir): the method's name (its
  config, options included, is recorded in run.json), or a vote's slug
  (vote_kmeans_k5+otsu_blue)."""
  return spec.slug if spec.members else spec.name


def method_from_flags():
  """`(spec, name, its config)` for --method: SGSCN's config from the SGSCN flags (and a
  preset of it, s3net, with the flags given), another method's registered default, each
  with the fields the spec sets; a vote's members each theirs."""
  spec = spec_from_flags()
  names = [m.name for m in spec.members] or [spec.name]
  base = {name: _config_of(registry.get_method(name)) for name in names}
  config = spec.config(base)
  if spec.members:
    method_vote.check_options(config, objects=objects_from_flags(),
                              seeds_per_image=FLAGS.seeds_per_image)
  return spec, run_name(spec), config


def call_kwargs_from_flags() -> dict:
  """--batching and --chunk_size, for the method's `segment_batch` (host methods ignore
  them)."""
  return dict(batching=None if FLAGS.batching == "auto" else FLAGS.batching,
              chunk_size=FLAGS.chunk_size)


def check_fit_dir() -> None:
  """--fit_dir names a folder holding at least one image, or the run stops here, before any
  work, with one line."""
  if FLAGS.fit_dir is None:
    return
  path = FLAGS.fit_dir
  if not os.path.isdir(path):
    what = "is a file" if os.path.exists(path) else "does not exist"
    raise UserError(f"--fit_dir {path} {what}: name a folder of images to fit the method on")
  try:
    cases, _ = list_dataset("folder", path)
  except ValueError as e:
    raise UserError(f"--fit_dir {path}: {e}") from None
  if not cases:
    raise UserError(f"--fit_dir {path} holds no images to fit the method on")


def list_cases():
  """The cases of --dataset (and their loader), from the data-set flags."""
  try:
    return list_dataset(FLAGS.dataset, FLAGS.data_dir, images=FLAGS.images, masks=FLAGS.masks,
                        mask_pattern=FLAGS.mask_pattern, demo_n=FLAGS.demo_n,
                        demo_size=FLAGS.demo_size, seed=FLAGS.seed, limit=FLAGS.limit,
                        spacing=parse_spacing(FLAGS.spacing), foreground=FLAGS.foreground)
  except ValueError as e:
    if "needs --" in str(e) or "--foreground" in str(e):
      raise app.UsageError(str(e))
    raise


def objects_from_flags():
  """The object step's `ObjectConfig`: the data set's prior, overridden by the flags; None
  with --noobjects."""
  if not FLAGS.objects:
    return None
  fields = object_prior(FLAGS.dataset)
  for name, flag in (("profile", "object_profile"), ("polarity", "object_polarity"),
                     ("regions", "regions"), ("rim_band", "object_rim"),
                     ("channel", "object_channel")):
    if FLAGS[flag].value is not None:
      fields[name] = FLAGS[flag].value
  if FLAGS.object_pieces:
    fields["pieces"] = True
  try:
    return ObjectConfig(**fields)
  except ValueError as e:
    raise app.UsageError(f"object step: {e}") from None


def standardise_from_flags(method_name: str) -> bool:
  """--standardise or --nostandardise where given, else the data set's default for the method
  (`datasets.standardise_prior`)."""
  if FLAGS["standardise"].present:
    return FLAGS.standardise
  return standardise_prior(FLAGS.dataset, method_name)


def despeckle_from_flags() -> str:
  """--despeckle, or the data set's (`datasets.despeckle_prior`)."""
  return FLAGS.despeckle or despeckle_prior(FLAGS.dataset)


def batch_size_from_flags() -> int:
  """--batch_size, or for 0: 1 on CPU (sequential batching: no speed to gain from larger
  batches, and the progress bar moves per image), 4 on accelerators."""
  if FLAGS.batch_size < 0:
    raise app.UsageError(f"--batch_size must be >= 0, got {FLAGS.batch_size}")
  if FLAGS.batch_size:
    return FLAGS.batch_size
  return 1 if jax.default_backend() == "cpu" else 4


def parse_spacing(text):
  return None if text is None else tuple(float(v) for v in text.split(","))


def run_volumes(method: registry.Method, name: str, config) -> int:
  """--dataset volume: `running.volumes.run_volumes` (one volume at a time, planned memory)."""
  try:
    cases, load = list_cases()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  options = volumes.VolumeOptions(
      out_dir=FLAGS.out_dir or f"runs/volume_{name}", seed=FLAGS.seed, method_name=name,
      mode=FLAGS.volume_mode, factor=FLAGS.factor,
      n_channels=FLAGS.n_channels if FLAGS["n_channels"].present else None,
      memory_limit=FLAGS.memory_limit, time_limit=FLAGS.time_limit,
      consistent=FLAGS.consistent_labels, slice_axis=FLAGS.slice_axis,
      overlay_rule=FLAGS.selection, objects=objects_from_flags(), overwrite=FLAGS.overwrite,
      foreground=FLAGS.foreground)
  print(f"{len(cases)} volumes -> {options.out_dir}", file=sys.stderr)
  try:
    result = volumes.run_volumes(cases, load, config, options, method=method,
                                 run_info={"argv": sys.argv, "dataset": "volume"})
  except memory.MemoryBudgetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  return report_result(options.out_dir, result)


def report_result(out_dir: str, result) -> int:
  """Prints the run's summary and the closing block; exit status 1 if any case failed
  (listed in failures.csv)."""
  print(open(f"{out_dir}/summary.md").read())
  report = f"{out_dir}/report.html"
  print(console.closing_block(result.summary, out_dir, time.perf_counter() - _START[0],
                              report if os.path.exists(report) else None))
  return 1 if result.failures else 0


_START = [time.perf_counter()]


def team_from_flags():
  """Joins the jax.distributed run the flags describe (None: a single process)."""
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if not FLAGS.distributed and all(v is None for v in explicit):
    return None
  return distributed.initialize(*explicit, heartbeat_timeout_seconds=FLAGS.heartbeat_timeout)


def main(argv):
  _START[0] = time.perf_counter()
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  team = team_from_flags()  # before any JAX computation
  if team is not None and FLAGS.overwrite:
    raise app.UsageError("--overwrite is for single-process runs: recompute a distributed "
                         "run into a new --out_dir")
  methods_flag.load()
  spec, name, config = method_from_flags()   # a bad spec: one line, exit 2, before any work
  check_fit_dir()
  if FLAGS.dataset == "volume":
    if spec.members:
      raise app.UsageError(f"--method {spec}: a vote of methods runs on 2D images, not "
                           "--dataset volume")
    return run_volumes(spec.method, name, config)
  try:
    cases, load = list_cases()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  call_kwargs = call_kwargs_from_flags()
  mesh = sharding.batch_mesh() if FLAGS.shard and jax.local_device_count() > 1 else None
  if mesh is not None:
    call_kwargs["mesh"] = mesh
  batch_size = sharding.round_up_batch(batch_size_from_flags(), mesh)
  if batch_size != batch_size_from_flags():
    print(f"batch size {FLAGS.batch_size} -> {batch_size} (a multiple of {mesh.size} devices)",
          file=sys.stderr)
  options = image_runs.RunOptions(
      out_dir=FLAGS.out_dir or (f"runs/{FLAGS.dataset}" if name == "sgscn"
                                else f"runs/{FLAGS.dataset}_{name}"),
      size=parse_size(FLAGS.size, FLAGS.dataset, name), bucket_multiple=FLAGS.bucket,
      batch_size=batch_size, seed=FLAGS.seed, overlay_rule=FLAGS.selection,
      montage_cases=FLAGS.montage, method_name=name, standardise=standardise_from_flags(name),
      objects=objects_from_flags(), hair_removal=FLAGS.hair_removal,
      seeds_per_image=FLAGS.seeds_per_image, gt_clipped=FLAGS.gt_clipped,
      overwrite=FLAGS.overwrite, despeckle=despeckle_from_flags(), fit_dir=FLAGS.fit_dir,
      fitted_from=FLAGS.fitted_from)
  print(f"{len(cases)} cases -> {options.out_dir}", file=sys.stderr)
  run_info = {"argv": sys.argv, "dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir,
              "processes": 1 if team is None else team.count,
              "local_devices": [str(d) for d in jax.local_devices()]}
  try:
    result = image_runs.run_dataset(cases, load, config, options, method=spec.method,
                                    call_kwargs=call_kwargs, run_info=run_info, team=team)
  except (distributed.IncompleteRun, memory.MemoryBudgetError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 3
  if team is not None and not team.leader:
    print(f"process {team.index}: share done ({len(result.rows)} finished, "
          f"{len(result.failures)} failed); process 0 writes the summary", file=sys.stderr)
    return 1 if result.failures else 0
  return report_result(options.out_dir, result)


if __name__ == "__main__":
  console.run(main)
