r"""Segment the MNI152 brain template (shipped by nilearn, no download) and score the clusters
against its grey- and white-matter maps: 3D SGSCN, slice-by-slice SGSCN, 3D k-means, JULE and
ANTs Atropos.

  pip install 'sgscn-jax[mni]'          # nilearn (and nibabel)
  nice -n 19 python -m experiments.mni152 --out_dir runs/mni152

The T1 template at `--resolution` mm (nilearn's `load_mni152_template`, ICBM152 2009a) is
cropped to the bounding box of nilearn's brain mask (plus `--margin` voxels); ground truth
is the grey- and white-matter probability maps thresholded at 0.5. Every method clusters
inside the foreground (`--mask`): nilearn's brain mask (`brain`, the data set's own, the
default), `data.foreground.foreground_mask` of the template (`otsu`) or every voxel of the
crop (`none`, the runs before issue 45); outside it a label of its own. Each method runs in a
fresh subprocess (so its peak memory, `ru_maxrss`, and CPU time are its own); SGSCN's
channels are chosen by `memory.plan_volume` within `--time_limit` estimated seconds per
method (`--n_channels` fixes them). Scoring: the cluster with the largest overlap with GM
is the GM prediction, likewise for WM (the paper's oracle rule), DSC for each.

`--methods jule` runs JULE (`sgscn_jax.jule`, options with `--jule_options`), `atropos` ANTs
Atropos (`baselines.atropos`, antspyx: `atropos:mrf=0.1`); `--seeds 0,1,2`
runs every method once per seed (resumable: finished method-seed rows are kept) and adds
paired differences over the seeds to `table.md`.

Writes `<out_dir>/results.json`, `table.md`, `<method>_labels.nii.gz` (the template's
geometry) and `<method>_overlay.png` (GM: prediction yellow, truth cyan).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

from sgscn_jax.reporting import console

FLAGS = flags.FLAGS
METHODS = ("sgscn_3d", "sgscn_slices", "kmeans", "jule", "atropos")
MASKS = ("brain", "otsu", "none")
flags.DEFINE_integer("resolution", 2, "Template resolution in mm (nilearn ships 1 and 2).")
flags.DEFINE_string("out_dir", "runs/mni152", "Output folder.")
flags.DEFINE_string("methods", ",".join(METHODS), "Comma-separated: sgscn_3d and sgscn_slices "
                    "(SGSCN in 3D or slice by slice), and kmeans or jule in the method grammar "
                    "(docs/USAGE.md), e.g. kmeans:3,jule:k=4,patch_size=5,atropos:mrf=0.1.")
flags.DEFINE_enum("mask", "brain", MASKS, "Where methods cluster: nilearn's brain mask "
                  "(brain), the template's Otsu foreground (otsu) or the whole crop (none).")
flags.DEFINE_integer("margin", 2, "Voxels kept around the brain mask's bounding box.")
flags.DEFINE_integer("factor", 1, "Downsampling factor of the cropped template.")
flags.DEFINE_integer("iterations", 50, "SGSCN: maximum iterations.")
flags.DEFINE_integer("min_labels", None, "SGSCN: early stop at this many labels (published: "
                     "3; default 3 with --mask none, 4 in a mask: its outside is one more).")
flags.DEFINE_string("sgscn_options", "", "SGSCN: Config fields as field:value,... "
                    "(core.config.config_from_text), and loss weights as weight.NAME:value, "
                    "e.g. weight.intensity_variance:1,weight.potts:1.")
flags.DEFINE_integer("n_channels", None, "SGSCN: fixed channels (default: planned).")
flags.DEFINE_float("time_limit", 360.0, "SGSCN: estimated compute seconds per method.")
flags.DEFINE_string("memory_limit", None, "Memory a method may use (default 80% available).")
flags.DEFINE_integer("k", None, "Clusters of k-means, JULE and Atropos (default: 3 inside a "
                     "mask, CSF, GM, WM; 4 with --mask none, the background too).")
flags.DEFINE_integer("seed", 0, "PRNG seed.")
flags.DEFINE_list("seeds", None, "Several seeds (overrides --seed): every method once per "
                  "seed, rows tagged with their seed, and paired differences between methods "
                  "over the seeds (t interval) in table.md.")
flags.DEFINE_list("jule_options", [], "JULE: fields of its config, e.g. n_patches=3000,"
                  "patch_size=5 (k is --k).")
flags.DEFINE_string("worker", None, "Internal: run one method and print its JSON row.")
flags.DEFINE_bool("table_only", False, "Print the table of an earlier run's results.json.")

CHANNEL_STEPS = (64, 32, 24, 16)


def load_template(resolution: int, margin: int):
  """`(VolumeFile of the cropped template, gm, wm, crop slices, full VolumeFile)`."""
  import numpy as np
  from nilearn import datasets  # the optional extra 'mni'
  from sgscn_jax.data import volume_io
  full = volume_io.nifti_volume(datasets.load_mni152_template(resolution=resolution))
  to_dhw = lambda img: np.transpose(np.asarray(img.dataobj), (2, 1, 0))  # noqa: E731
  gm = to_dhw(datasets.load_mni152_gm_template(resolution=resolution)) > 0.5
  wm = to_dhw(datasets.load_mni152_wm_template(resolution=resolution)) > 0.5
  brain = to_dhw(datasets.load_mni152_brain_mask(resolution=resolution)) > 0
  where = np.argwhere(brain)
  lo = np.maximum(where.min(0) - margin, 0)
  hi = np.minimum(where.max(0) + 1 + margin, brain.shape)
  crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
  return full.volume[crop], gm[crop], wm[crop], crop, full


SGSCN_MODES = ("sgscn_3d", "sgscn_slices")
REGISTERED = ("kmeans", "jule", "atropos")   # registered methods run on the template


def load_mask(rule: str, resolution: int, crop, template):
  """The foreground `[D, H, W]` bool of the cropped template by `rule` (`MASKS`), or None."""
  import numpy as np
  if rule == "none":
    return None
  if rule == "otsu":
    from sgscn_jax.data import foreground
    return foreground.foreground_mask(template.volume, template.spacing)[crop]
  from nilearn import datasets
  brain = datasets.load_mni152_brain_mask(resolution=resolution)
  return np.transpose(np.asarray(brain.dataobj), (2, 1, 0))[crop] > 0


def parse_methods(text: str) -> list:
  """--methods: each item `sgscn_3d`, `sgscn_slices`, or kmeans / jule / atropos in the registry's
  grammar (`kmeans:3`, `jule:k=4,patch_size=5`); a `UserError` (one line) for any other."""
  from sgscn_jax import registry
  from sgscn_jax.errors import UserError
  items = []
  for item in registry.split_specs(text):
    if item not in SGSCN_MODES:
      spec = registry.parse_method(item)
      if spec.name not in REGISTERED or spec.members:
        raise UserError(f"--methods {item}: this experiment runs {', '.join(SGSCN_MODES)} "
                        f"and {', '.join(REGISTERED)} (in the method grammar, e.g. kmeans:3)")
      item = str(spec)
    items.append(item)
  if len(set(items)) != len(items):
    raise UserError(f"--methods {text}: a method is named twice")
  return items


def sgscn_config(text: str, base):
  """`base` (a `Config`) with `--sgscn_options`: `field:value` pairs and loss weights
  `weight.NAME:value` (a weight of a term `volume.loss_terms` registers, or SGSCN's own)."""
  import dataclasses
  from sgscn_jax.core.config import config_from_text
  from sgscn_jax.volume import loss_terms  # noqa: F401 - registers intensity_variance, potts
  fields, weights = [], {}
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, _, value = part.partition(":")
    if name.startswith("weight."):
      weights[name[len("weight."):]] = float(value)
    else:
      fields.append(part)
  config = config_from_text(",".join(fields), base)
  if weights:
    merged = dict(config.loss_weights)
    merged.update(weights)
    config = dataclasses.replace(config, loss_weights=tuple(merged.items()))
  return config


def _file_stem(method: str) -> str:
  """A method's name in file names: `kmeans`, `jule_k4_patch_size-5`."""
  from sgscn_jax import registry
  return method if method in SGSCN_MODES else (
      registry.parse_method(method).slug if ":" in method else method)


def _worker(method: str) -> dict:
  import jax
  import numpy as np
  from sgscn_jax import Config
  from sgscn_jax.volume import memory
  from sgscn_jax.evaluation import metrics, selection
  from sgscn_jax.reporting import overlays
  from sgscn_jax.data import resize
  from sgscn_jax import volume
  from sgscn_jax.data import volume_io
  from sgscn_jax.data import files
  from sgscn_jax.baselines import kmeans
  start = time.perf_counter()
  from sgscn_jax.volume import masked
  image, gm, wm, crop, full = load_template(FLAGS.resolution, FLAGS.margin)
  spacing = full.spacing
  factors = memory.factors_for(spacing, FLAGS.factor)
  work_shape = memory.factor_shape(image.shape[:3], factors)
  work = resize.resize_volume(image, work_shape)
  work_spacing = tuple(s * n / m for s, n, m in zip(spacing, image.shape[:3], work_shape))
  mask = load_mask(FLAGS.mask, FLAGS.resolution, crop, full)
  work_mask = (None if mask is None else
               resize.labels_to_volume_shape(mask.astype(np.int32), work_shape) > 0)
  k = FLAGS.k or (4 if mask is None else 3)
  key = jax.random.key(FLAGS.seed)
  row = {"method": method, "crop_shape": list(image.shape[:3]), "work_shape": list(work_shape),
         "spacing_mm": list(work_spacing), "mask": FLAGS.mask}
  if method.startswith("sgscn"):
    mode = "3d" if method == "sgscn_3d" else "slices"
    plan = memory.plan_volume(work_shape, 1, spacing=work_spacing, mode=mode, factor=1,
                              n_channels=FLAGS.n_channels, iterations=FLAGS.iterations,
                              memory_limit=FLAGS.memory_limit, time_limit=FLAGS.time_limit,
                              channel_steps=CHANNEL_STEPS)
    print(f"plan {method}: {plan.describe()}", file=sys.stderr, flush=True)
    min_labels = FLAGS.min_labels or (3 if work_mask is None else 4)
    config = sgscn_config(FLAGS.sgscn_options,
                          Config(n_channels=plan.n_channels, iterations=FLAGS.iterations,
                                 min_labels=min_labels))
    seg = volume.segment_volume(key, work, config, mode=mode, spacing=work_spacing,
                                mask=work_mask)
    row.update(n_channels=plan.n_channels, min_labels=min_labels,
               sgscn_options=FLAGS.sgscn_options,
               estimated_mb=round(plan.estimated_bytes / 1e6),
               estimated_seconds=round(plan.estimated_seconds))
  elif method.partition(":")[0] == "jule":
    from sgscn_jax.jule import method as jule
    from sgscn_jax.registry import config_with_options, parse_method
    config = parse_method(method).config({"jule": jule.JuleConfig(k=k)})
    config = config_with_options(config, FLAGS.jule_options)
    plan = jule.plan_memory(work_shape, 1, config, spacing=work_spacing, factor=1,
                            memory_limit=FLAGS.memory_limit)
    print(f"plan {method}: {plan.describe()}", file=sys.stderr, flush=True)
    seg = jule.segment(key, work, config, spacing=work_spacing, mask=work_mask)
    row.update(k=config.k, n_patches=config.n_patches, patch_size=config.patch_size,
               config=str(parse_method(method)),
               estimated_mb=round(plan.estimated_bytes / 1e6),
               estimated_seconds=round(plan.estimated_seconds))
  elif method.partition(":")[0] == "atropos":
    from sgscn_jax.baselines import atropos
    from sgscn_jax.core.loop import Segmentation
    from sgscn_jax.registry import parse_method
    config = parse_method(method).config({"atropos": atropos.AtroposConfig(k=k)})
    labels = atropos.label_image(work, config, spacing=work_spacing,
                                 mask=work_mask if work_mask is not None
                                 else np.ones(work_shape, bool))
    seg = Segmentation(labels, np.int32(np.unique(labels).size), np.int32(config.iterations),
                       np.bool_(True), None)
    row.update(k=config.k, mrf=config.mrf, initialisation=config.initialisation)
  else:
    from sgscn_jax.registry import parse_method
    config = parse_method(method).config({"kmeans": kmeans.KMeansConfig(k=k)})
    seg = (kmeans.segment_one(key, work, config) if work_mask is None
           else masked.kmeans_in_mask(key, work, config, work_mask))
    row.update(k=config.k)
  seg = jax.device_get(seg)
  labels = resize.labels_to_volume_shape(np.asarray(seg.labels), image.shape[:3])
  seconds = time.perf_counter() - start
  scores = {}
  for name, truth in (("gm", gm), ("wm", wm)):
    chosen = selection.largest_overlap_cluster(labels, truth)
    scores[name] = chosen
    row[f"dice_{name}"] = metrics.dice(labels == chosen, truth)
  row.update(same_cluster=scores["gm"] == scores["wm"], n_labels=int(seg.n_labels),
             iterations=int(seg.iterations), seconds=round(seconds, 1))
  out = Path(FLAGS.out_dir)
  whole = np.zeros(full.volume.shape[:3], np.int32)
  whole[crop] = labels + 1  # 0: outside the crop
  volume_io.write_label_volume(out / f"{_file_stem(method)}_labels.nii.gz", whole, full.geometry)
  *shown, shown_spacing = volume_io.display_view(full.geometry, image, labels == scores["gm"],
                                                 gm, spacing=spacing)
  files.write_png(out / f"{_file_stem(method)}_overlay.png",
               overlays.orthogonal_overlay(*shown, spacing=shown_spacing))
  usage = resource.getrusage(resource.RUSAGE_SELF)
  row.update(peak_rss_mb=round(usage.ru_maxrss / 1024),
             cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1))
  return row


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262}


def paired_lines(rows) -> list:
  """Per pair of methods run on the same seeds: `a - b` in DSC points per tissue, the mean
  over seeds with a 95 % t interval over seeds (one volume: the seeds are the replicates)."""
  import numpy as np
  by = {}
  for r in rows:
    by.setdefault(r["method"], {})[r.get("seed", 0)] = r
  names = list(by)
  lines = []
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      seeds = sorted(set(by[a]) & set(by[b]))
      if len(seeds) < 2:
        continue
      parts = []
      for tissue in ("gm", "wm"):
        d = np.array([100 * (by[a][s][f"dice_{tissue}"] - by[b][s][f"dice_{tissue}"])
                      for s in seeds])
        half = T_975.get(len(d) - 1, 1.96) * d.std(ddof=1) / np.sqrt(len(d))
        parts.append(f"{tissue.upper()} {d.mean():+.1f} (95 % CI {d.mean() - half:+.1f} to "
                     f"{d.mean() + half:+.1f}; per seed "
                     + " / ".join(f"{x:+.1f}" for x in d) + ")")
      lines.append(f"- {a} - {b}, seeds {','.join(map(str, seeds))}: " + "; ".join(parts))
  return lines


def table_markdown(rows) -> str:
  """The Markdown table of `results.json` rows (and paired differences over seeds)."""
  lines = ["| method | seed | working volume | channels / k | iterations | labels | DSC GM | "
           "DSC WM | GM, WM one cluster | wall s | CPU s | peak RSS MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    size = "x".join(map(str, r["work_shape"])) + f" at {r['spacing_mm'][0]:g} mm"
    lines.append(f"| {r['method']} | {r.get('seed', 0)} | {size} | "
                 f"{r.get('n_channels', r.get('k'))} | "
                 f"{r['iterations']} | {r['n_labels']} | {100 * r['dice_gm']:.1f} | "
                 f"{100 * r['dice_wm']:.1f} | {'yes' if r['same_cluster'] else 'no'} | "
                 f"{r.get('wall_seconds', '')} | {r['cpu_seconds']} | {r['peak_rss_mb']} |")
  paired = paired_lines(rows)
  if paired:
    lines += ["", "Paired differences (DSC points):", ""] + paired
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if FLAGS.table_only:
    rows = json.loads((Path(FLAGS.out_dir) / "results.json").read_text())
    print(table_markdown(rows))
    return 0
  if FLAGS.worker:
    print(json.dumps(_worker(FLAGS.worker)))
    return 0
  methods = parse_methods(FLAGS.methods)   # a bad spec: one line, exit 2, before any work
  try:
    import nilearn  # noqa: F401
  except ImportError:
    print("error: the MNI152 experiment needs nilearn: pip install 'sgscn-jax[mni]'",
          file=sys.stderr)
    return 2
  out = Path(FLAGS.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  seeds = [int(x) for x in FLAGS.seeds] if FLAGS.seeds else [FLAGS.seed]
  done = {}
  if (out / "results.json").exists() and FLAGS.seeds:  # resume: keep finished (method, seed)
    done = {(r["method"], r.get("seed", 0)): r
            for r in json.loads((out / "results.json").read_text())}
  rows = []
  for seed in seeds:
    passed = [f"--{name}={getattr(FLAGS, name)}" for name in
              ("resolution", "out_dir", "margin", "factor", "iterations", "time_limit",
               "mask")]
    passed += [f"--k={FLAGS.k}"] if FLAGS.k else []
    passed += [f"--min_labels={FLAGS.min_labels}"] if FLAGS.min_labels else []
    passed += [f"--sgscn_options={FLAGS.sgscn_options}"] if FLAGS.sgscn_options else []
    passed += [f"--seed={seed}"]
    passed += [f"--n_channels={FLAGS.n_channels}"] if FLAGS.n_channels else []
    passed += [f"--memory_limit={FLAGS.memory_limit}"] if FLAGS.memory_limit else []
    passed += [f"--jule_options={','.join(FLAGS.jule_options)}"] if FLAGS.jule_options else []
    if FLAGS.seeds:  # each seed's label volumes and overlays in their own folder
      passed = [p if not p.startswith("--out_dir=") else f"--out_dir={out / f'seed{seed}'}"
                for p in passed]
    for method in methods:
      if (method, seed) in done:
        rows.append(done[(method, seed)])
        continue
      t = time.perf_counter()
      proc = subprocess.run([sys.executable, "-m", "experiments.mni152", f"--worker={method}"]
                            + passed, capture_output=True, text=True)
      sys.stderr.write("".join(l + "\n" for l in proc.stderr.splitlines()
                               if l.startswith(("plan ", "jule: "))))
      if proc.returncode != 0:
        print(f"{method} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return 1
      row = json.loads(proc.stdout.strip().splitlines()[-1])
      row["wall_seconds"] = round(time.perf_counter() - t, 1)
      row["seed"] = seed
      print(json.dumps(row), file=sys.stderr, flush=True)
      rows.append(row)
      if FLAGS.seeds:
        (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
  (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
  table = table_markdown(rows)
  (out / "table.md").write_text(table)
  print(table)
  return 0


if __name__ == "__main__":
  console.run(main)
