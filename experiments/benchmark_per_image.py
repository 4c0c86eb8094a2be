r"""Seconds per image of the whole optimisation under several stopping rules and schedules.

`experiments.benchmark` measures one iteration; what a user waits for is iterations x their
cost, which the convergence rule (`--stop_rule`) and the coarse-to-fine schedule
(`--schedule`) change. This runs the same images under each configuration in the same
process, interleaved image by image (so drifts of the machine's speed hit every
configuration alike), after one warm-up call per configuration and shape (compilation is
not counted), and reports per configuration: mean seconds per image, mean iterations, and
the ratio to the first configuration. JSON on stdout, a table on stderr.

  python -m experiments.benchmark_per_image --dataset ph2 --data_dir ../shared/data/PH2 \
      --limit 8 --configs "flat=;either=stop_rule:either;schedule=schedule:0.5:35,stop_rule:either"

A configuration is `title=field:value,...` over `Config` fields (`config.config_from_text`:
stop_rule, schedule, iterations, stable_fraction, ...); empty = the default Config. Images
go through the runner's loading and working size (`--size`, default 256 on the long side).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np
from absl import flags

from sgscn_jax import segment_one
from sgscn_jax.core.config import config_from_text
from sgscn_jax.data import resize
from sgscn_jax.data.datasets import DATASETS, list_dataset
from sgscn_jax.reporting import console
from sgscn_jax.running.images import case_key

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "ph2", list(DATASETS), "Data-set layout.")
flags.DEFINE_string("data_dir", None, "Data-set folder (not needed for demo).")
flags.DEFINE_integer("limit", 8, "Images (the first N cases by id).")
flags.DEFINE_integer("size", 256, "Working size: long side in pixels (0: native).")
flags.DEFINE_integer("seed", 0, "Seed of the case keys (as the runner's).")
flags.DEFINE_string("configs", "flat=;either=stop_rule:either",
                    "Semicolon-separated `title=field:value,...`; the first is the reference.")


def main(argv):
  del argv
  configs = []
  for entry in filter(None, FLAGS.configs.split(";")):
    title, _, spec = entry.partition("=")
    configs.append((title.strip(), config_from_text(spec)))
  cases, load = list_dataset(FLAGS.dataset, FLAGS.data_dir)
  cases = cases[:FLAGS.limit]
  images = []
  for case in cases:
    image = load(case).image
    shape = image.shape[:2] if not FLAGS.size else resize.bucket_shape(
        resize.working_shape(image.shape, FLAGS.size), 16)
    images.append((case.case_id, resize.resize_image(image, shape)))
  seconds = {t: [] for t, _ in configs}
  iterations = {t: [] for t, _ in configs}
  warm = set()
  for i, (case_id, image) in enumerate(images):
    key = case_key(FLAGS.seed, case_id)
    for title, config in configs:
      if (title, image.shape) not in warm:  # compile outside the timing
        jax.block_until_ready(segment_one(key, image, config).labels)
        warm.add((title, image.shape))
      start = time.perf_counter()
      result = segment_one(key, image, config)
      jax.block_until_ready(result.labels)
      seconds[title].append(time.perf_counter() - start)
      iterations[title].append(int(result.iterations))
    print(f"{i + 1}/{len(images)} {case_id}: " + ", ".join(
        f"{t} {seconds[t][-1]:.1f} s ({iterations[t][-1]} it)" for t, _ in configs),
        file=sys.stderr, flush=True)
  reference = np.mean(seconds[configs[0][0]])
  report = {"images": len(images), "size": FLAGS.size, "configs": {
      t: {"config": repr(c), "seconds_per_image": round(float(np.mean(seconds[t])), 3),
          "iterations": round(float(np.mean(iterations[t])), 2),
          "ratio": round(float(np.mean(seconds[t]) / reference), 3)} for t, c in configs}}
  print("| configuration | s / image | iterations | ratio |\n|---|---|---|---|", file=sys.stderr)
  for t, r in report["configs"].items():
    print(f"| {t} | {r['seconds_per_image']:.2f} | {r['iterations']:.1f} | {r['ratio']:.2f} |",
          file=sys.stderr)
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  console.run(main)
