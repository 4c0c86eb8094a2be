r"""Segment the MNI152 brain template (shipped by nilearn, no download) and score the clusters
against its grey- and white-matter maps: 3D SGSCN, slice-by-slice SGSCN and 3D k-means.

  pip install 'sgscn-jax[mni]'          # nilearn (and nibabel)
  nice -n 19 python -m experiments.mni152 --out_dir runs/mni152

The T1 template at `--resolution` mm (nilearn's `load_mni152_template`, ICBM152 2009a) is
cropped to the bounding box of nilearn's brain mask (plus `--margin` voxels); ground truth
is the grey- and white-matter probability maps thresholded at 0.5. Each method runs in a
fresh subprocess (so its peak memory, `ru_maxrss`, and CPU time are its own); SGSCN's
channels are chosen by `memory.plan_volume` within `--time_limit` estimated seconds per
method (`--n_channels` fixes them). Scoring: the cluster with the largest overlap with GM
is the GM prediction, likewise for WM (the paper's oracle rule), DSC for each.

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

from absl import app
from absl import flags

from sgscn_jax.reporting import console

FLAGS = flags.FLAGS
METHODS = ("sgscn_3d", "sgscn_slices", "kmeans")
flags.DEFINE_integer("resolution", 2, "Template resolution in mm (nilearn ships 1 and 2).")
flags.DEFINE_string("out_dir", "runs/mni152", "Output folder.")
flags.DEFINE_list("methods", list(METHODS), f"Any of {METHODS}.")
flags.DEFINE_integer("margin", 2, "Voxels kept around the brain mask's bounding box.")
flags.DEFINE_integer("factor", 1, "Downsampling factor of the cropped template.")
flags.DEFINE_integer("iterations", 50, "SGSCN: maximum iterations.")
flags.DEFINE_integer("min_labels", 3, "SGSCN: early stop at this many labels (published: 3).")
flags.DEFINE_integer("n_channels", None, "SGSCN: fixed channels (default: planned).")
flags.DEFINE_float("time_limit", 360.0, "SGSCN: estimated compute seconds per method.")
flags.DEFINE_string("memory_limit", None, "Memory a method may use (default 80% available).")
flags.DEFINE_integer("k", 4, "k-means clusters (background, CSF, GM, WM).")
flags.DEFINE_integer("seed", 0, "PRNG seed.")
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
  image, gm, wm, crop, full = load_template(FLAGS.resolution, FLAGS.margin)
  spacing = full.spacing
  factors = memory.factors_for(spacing, FLAGS.factor)
  work_shape = memory.factor_shape(image.shape[:3], factors)
  work = resize.resize_volume(image, work_shape)
  work_spacing = tuple(s * n / m for s, n, m in zip(spacing, image.shape[:3], work_shape))
  key = jax.random.key(FLAGS.seed)
  row = {"method": method, "crop_shape": list(image.shape[:3]), "work_shape": list(work_shape),
         "spacing_mm": list(work_spacing)}
  if method.startswith("sgscn"):
    mode = "3d" if method == "sgscn_3d" else "slices"
    plan = memory.plan_volume(work_shape, 1, spacing=work_spacing, mode=mode, factor=1,
                              n_channels=FLAGS.n_channels, iterations=FLAGS.iterations,
                              memory_limit=FLAGS.memory_limit, time_limit=FLAGS.time_limit,
                              channel_steps=CHANNEL_STEPS)
    print(f"plan {method}: {plan.describe()}", file=sys.stderr, flush=True)
    config = Config(n_channels=plan.n_channels, iterations=FLAGS.iterations,
                    min_labels=FLAGS.min_labels)
    seg = volume.segment_volume(key, work, config, mode=mode, spacing=work_spacing)
    row.update(n_channels=plan.n_channels, min_labels=FLAGS.min_labels,
               estimated_mb=round(plan.estimated_bytes / 1e6),
               estimated_seconds=round(plan.estimated_seconds))
  else:
    config = kmeans.KMeansConfig(k=FLAGS.k)
    seg = kmeans.segment_one(key, work, config)
    row.update(k=FLAGS.k)
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
  volume_io.write_label_volume(out / f"{method}_labels.nii.gz", whole, full.geometry)
  *shown, shown_spacing = volume_io.display_view(full.geometry, image, labels == scores["gm"],
                                                 gm, spacing=spacing)
  files.write_png(out / f"{method}_overlay.png",
               overlays.orthogonal_overlay(*shown, spacing=shown_spacing))
  usage = resource.getrusage(resource.RUSAGE_SELF)
  row.update(peak_rss_mb=round(usage.ru_maxrss / 1024),
             cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1))
  return row


def table_markdown(rows) -> str:
  """The Markdown table of `results.json` rows."""
  lines = ["| method | working volume | channels / k | iterations | labels | DSC GM | DSC WM | "
           "GM, WM one cluster | wall s | CPU s | peak RSS MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    size = "x".join(map(str, r["work_shape"])) + f" at {r['spacing_mm'][0]:g} mm"
    lines.append(f"| {r['method']} | {size} | {r.get('n_channels', r.get('k'))} | "
                 f"{r['iterations']} | {r['n_labels']} | {100 * r['dice_gm']:.1f} | "
                 f"{100 * r['dice_wm']:.1f} | {'yes' if r['same_cluster'] else 'no'} | "
                 f"{r.get('wall_seconds', '')} | {r['cpu_seconds']} | {r['peak_rss_mb']} |")
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
  try:
    import nilearn  # noqa: F401
  except ImportError:
    print("error: the MNI152 experiment needs nilearn: pip install 'sgscn-jax[mni]'",
          file=sys.stderr)
    return 2
  out = Path(FLAGS.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  passed = [f"--{name}={getattr(FLAGS, name)}" for name in
            ("resolution", "out_dir", "margin", "factor", "iterations", "min_labels", "time_limit",
             "k", "seed")]
  passed += [f"--n_channels={FLAGS.n_channels}"] if FLAGS.n_channels else []
  passed += [f"--memory_limit={FLAGS.memory_limit}"] if FLAGS.memory_limit else []
  rows = []
  for method in FLAGS.methods:
    if method not in METHODS:
      raise app.UsageError(f"unknown method {method!r}; choose from {METHODS}")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.mni152", f"--worker={method}"]
                          + passed, capture_output=True, text=True)
    sys.stderr.write("".join(l + "\n" for l in proc.stderr.splitlines() if l.startswith("plan ")))
    if proc.returncode != 0:
      print(f"{method} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
      return 1
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(row), file=sys.stderr, flush=True)
    rows.append(row)
  (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
  table = table_markdown(rows)
  (out / "table.md").write_text(table)
  print(table)
  return 0


if __name__ == "__main__":
  console.run(main)
