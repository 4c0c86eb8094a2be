r"""CUTS's speed on this machine: the fit on a data set, then the per-image segmentation.

`python -m experiments.benchmark --method cuts` runs this (or `python -m
experiments.benchmark_cuts`). It reads --cuts_images images (the PH2 cases of --cuts_data_dir
when that folder exists, else synthetic lesion images), resizes them to 256 on the long side
(the runner's working size, buckets of 16: 192x256 on PH2), fits CUTS with its default
config and the fit key of seed 0, and segments --cuts_segment of them. Prints a table on
stderr and one JSON object on stdout:

  fit_seconds          the whole fit, compilation included (the runner's fit)
  fit_ms_per_step      the median step after the first chunk (compilation excluded)
  segment_seconds      per image, median and max over the segmented images (the first, with
                       the encoder's compilation, reported apart as segment_first_seconds)
  peak_rss_mib         peak resident memory of this process
  goals                fit <= 900 s for 40 images; segmentation <= 5 s per image
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("cuts_data_dir", "../shared/data/PH2", "cuts: the PH2 folder (synthetic "
                    "lesion images when it does not exist).")
flags.DEFINE_integer("cuts_images", 40, "cuts: images the encoder is fitted on.")
flags.DEFINE_integer("cuts_segment", 5, "cuts: images segmented after the fit.")
flags.DEFINE_integer("cuts_steps", None, "cuts: fit steps (default: the config's).")

FIT_GOAL_SECONDS, SEGMENT_GOAL_SECONDS = 900.0, 5.0   # the goals, 40 images


def _images(n: int) -> list:
  import numpy as np
  from sgscn_jax.data import resize, synthetic
  from sgscn_jax.data.datasets import list_dataset
  if os.path.isdir(FLAGS.cuts_data_dir):
    cases, load = list_dataset("ph2", FLAGS.cuts_data_dir, limit=n)
    raw = [load(c).image for c in cases]
  else:
    raw = [synthetic.lesion_image(i, (192, 256))[0] for i in range(n)]
  out = []
  for image in raw:
    shape = resize.bucket_shape(resize.working_shape(image.shape, 256), 16)
    out.append(resize.resize_image(image, shape).astype(np.float32))
  return out


def run() -> dict:
  """Fits and segments (module docstring); flags must be parsed. JAX is imported here, not
  at the top, so that the benchmark's PyTorch child never imports it."""
  import dataclasses
  import jax
  from sgscn_jax import registry
  from sgscn_jax.cuts import method as cuts_method
  from sgscn_jax.running import fitting
  method = registry.get_method("cuts")
  config = method.default_config
  if FLAGS.cuts_steps:
    config = dataclasses.replace(config, steps=FLAGS.cuts_steps)
  images = _images(FLAGS.cuts_images)
  key = jax.random.fold_in(jax.random.key(0), fitting.FIT_SALT)
  start = time.perf_counter()
  state = method.fit(images, config, key)
  fit_seconds = time.perf_counter() - start
  times = []
  for i, image in enumerate(images[:FLAGS.cuts_segment]):
    t = time.perf_counter()
    cuts_method.segment_image(jax.random.key(i), image, config, state)
    times.append(time.perf_counter() - t)
  warm = times[1:] or times
  report = {
      "method": "cuts", "images": len(images), "image": list(images[0].shape),
      "data": FLAGS.cuts_data_dir if os.path.isdir(FLAGS.cuts_data_dir) else "synthetic",
      "steps": config.steps, "fit_seconds": round(fit_seconds, 1),
      "segment_first_seconds": round(times[0], 2),
      "segment_seconds_median": round(statistics.median(warm), 2),
      "segment_seconds_max": round(max(warm), 2),
      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
      "jax": jax.__version__,
      "fit_goal_met": fit_seconds <= FIT_GOAL_SECONDS * len(images) / 40,
      "segment_goal_met": max(warm) <= SEGMENT_GOAL_SECONDS}
  print(f"CUTS: fit {report['fit_seconds']} s on {len(images)} images "
        f"{images[0].shape[0]}x{images[0].shape[1]} ({config.steps} steps); segmentation "
        f"{report['segment_seconds_median']} s per image (max {report['segment_seconds_max']}, "
        f"first {report['segment_first_seconds']}); peak RSS {report['peak_rss_mib']} MiB",
        file=sys.stderr)
  return report


def main(argv):
  del argv
  print(json.dumps(run()))
  return 0


if __name__ == "__main__":
  app.run(main)
