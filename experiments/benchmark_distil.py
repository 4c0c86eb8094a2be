r"""Distil's speed on this machine: the teacher, the student's fit on a data set, then the
student's batched inference per 256x256 image, beside SGSCN's time per image.

`python -m experiments.benchmark --method distil` runs this (or `python -m
experiments.benchmark_distil`). It reads --distil_images images (the PH2 cases of
--distil_data_dir when that folder exists, else synthetic lesion images) at the runner's
working size (256 on the long side, buckets of 16: 192x256 on PH2), runs the teacher
(`DistilConfig.teacher`, default Otsu (blue)) on them into a temporary folder, then fits
the student with the fit key of seed 0 (the teacher's targets are reused from that folder,
so the fit's time is the student's). Inference: the same images resized to 256x256, in
batches of --distil_batch, the whole `segment_batch` (the forward pass, the resize back,
the threshold and the cleaning on the host). Prints a table on stderr and one JSON object on
stdout:

  teacher_seconds              the teacher's objects on every fit image
  fit_seconds                  the student's fit, compilation included (teacher reused)
  fit_seconds_per_step         fit_seconds / steps (compilation and resizing included)
  infer_ms_per_image[tta]      median over --distil_repeats of one batch's time / its size,
                               warm, for tta none (the default) and flips
  sgscn_seconds_per_image      SGSCN (default config) on one 256x256 image, warm (0 images:
                               not measured)
  speedup                      SGSCN's time per image / the student's (tta none)
  peak_rss_mib                 peak resident memory of this process
  goals                        inference <= 50 ms per 256x256 image; student fit <= 900 s
                               for 40 images
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("distil_data_dir", "../shared/data/PH2", "distil: the PH2 folder (synthetic "
                    "lesion images when it does not exist).")
flags.DEFINE_integer("distil_images", 40, "distil: images the student is fitted on.")
flags.DEFINE_integer("distil_steps", None, "distil: fit steps (default: the config's).")
flags.DEFINE_integer("distil_batch", 8, "distil: images per inference batch.")
flags.DEFINE_integer("distil_repeats", 5, "distil: timed inference batches (medians).")
flags.DEFINE_integer("distil_sgscn_images", 1, "distil: SGSCN images timed beside it (0: none).")
flags.DEFINE_bool("distil_quick", False, "distil: the quick config's tiny student (tests).")

INFER_GOAL_MS, FIT_GOAL_SECONDS = 50.0, 900.0   # the goals (40 images at 256 px)


def cpu_model() -> str:
  """`lscpu`'s model name (the processor's), or platform's."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def _images(n: int) -> list:
  import numpy as np
  from sgscn_jax.data import resize, synthetic
  from sgscn_jax.data.datasets import list_dataset
  if os.path.isdir(FLAGS.distil_data_dir):
    cases, load = list_dataset("ph2", FLAGS.distil_data_dir, limit=n)
    raw = [load(c).image for c in cases]
  else:
    raw = [synthetic.lesion_image(i, (192, 256))[0] for i in range(n)]
  out = []
  for image in raw:
    shape = resize.bucket_shape(resize.working_shape(image.shape, 256), 16)
    out.append(resize.resize_image(image, shape).astype(np.float32))
  return out


def _sgscn_seconds(image) -> float:
  """SGSCN's default config on one image, the second (warm) call's seconds."""
  import jax
  from sgscn_jax import registry
  sgscn = registry.get_method("sgscn")
  jax.block_until_ready(sgscn.segment_one(jax.random.key(0), image).labels)
  times = []
  for i in range(FLAGS.distil_sgscn_images):
    t = time.perf_counter()
    jax.block_until_ready(sgscn.segment_one(jax.random.key(1 + i), image).labels)
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def run() -> dict:
  """Fits and segments (module docstring); flags must be parsed."""
  import jax
  import numpy as np
  from sgscn_jax import registry
  from sgscn_jax.data import resize
  from sgscn_jax.distil import teacher as teachers
  from sgscn_jax.evaluation.objects import ObjectConfig
  from sgscn_jax.running import fitting
  method = registry.get_method("distil")
  config = dataclasses.replace(method.quick_config if FLAGS.distil_quick
                               else method.default_config, log_every=0)
  if FLAGS.distil_steps:
    config = dataclasses.replace(config, steps=FLAGS.distil_steps)
  images = _images(FLAGS.distil_images)
  ids = tuple(f"image{i:03d}" for i in range(len(images)))
  prior = ObjectConfig(profile="lesion", polarity="dark", channel="2")   # PH2's prior
  key = jax.random.fold_in(jax.random.key(0), fitting.FIT_SALT)
  with tempfile.TemporaryDirectory() as out:
    context = registry.FitContext(ids, prior, out)
    start = time.perf_counter()
    teachers.teacher_targets(images, teachers.resolve_teacher(config.teacher), prior,
                             jax.random.fold_in(key, 1), ids=ids,
                             out_dir=os.path.join(out, "teacher"), stream=open(os.devnull, "w"))
    teacher_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state = method.fit(images, config, key, context=context)
    fit_seconds = time.perf_counter() - start
  square = np.stack([resize.resize_image(im, (256, 256)) for im in images])
  b = FLAGS.distil_batch
  batches = [square[i:i + b] for i in range(0, len(square) - b + 1, b)] or [square]
  infer = {}
  for tta in ("none", "flips"):
    chosen = dataclasses.replace(config, tta=tta)
    method.segment_batch(None, batches[0], chosen, state=state)   # compile
    times = []
    for r in range(FLAGS.distil_repeats):
      batch = batches[r % len(batches)]
      t = time.perf_counter()
      method.segment_batch(None, batch, chosen, state=state)
      times.append((time.perf_counter() - t) / len(batch))
    infer[tta] = round(1000 * statistics.median(times), 1)
  sgscn = (_sgscn_seconds(square[0]) if FLAGS.distil_sgscn_images else None)
  per_step = state["loss"].shape[0]
  report = {
      "method": "distil", "images": len(images), "image": list(images[0].shape),
      "data": FLAGS.distil_data_dir if os.path.isdir(FLAGS.distil_data_dir) else "synthetic",
      "teacher": config.teacher, "size": config.size, "width": config.width,
      "depth": config.depth, "steps": per_step, "batch_size": config.batch_size,
      "teacher_seconds": round(teacher_seconds, 1), "fit_seconds": round(fit_seconds, 1),
      "fit_seconds_per_step": round(fit_seconds / per_step, 3),
      "infer_image": [256, 256, 3], "infer_batch": len(batches[0]),
      "infer_ms_per_image": infer,
      "sgscn_seconds_per_image": None if sgscn is None else round(sgscn, 2),
      "speedup": None if sgscn is None else round(1000 * sgscn / infer["none"]),
      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "cpus": os.cpu_count(), "cpu": cpu_model(),
      "load_average": [round(x, 2) for x in os.getloadavg()], "jax": jax.__version__,
      "infer_goal_met": infer["none"] <= INFER_GOAL_MS,
      "fit_goal_met": fit_seconds <= FIT_GOAL_SECONDS * len(images) / 40}
  print(f"distil: teacher {config.teacher} {report['teacher_seconds']} s, student fit "
        f"{report['fit_seconds']} s on {len(images)} images {images[0].shape[0]}x"
        f"{images[0].shape[1]} ({per_step} steps of {config.batch_size}); inference "
        f"{infer['none']} ms per 256x256 image (tta flips {infer['flips']} ms, batches of "
        f"{len(batches[0])}); SGSCN {report['sgscn_seconds_per_image']} s per image; peak RSS "
        f"{report['peak_rss_mib']} MiB; {report['cpus']} CPUs ({report['cpu']}), load "
        f"{report['load_average']}", file=sys.stderr)
  return report


def main(argv):
  del argv
  print(json.dumps(run()))
  return 0


if __name__ == "__main__":
  app.run(main)
