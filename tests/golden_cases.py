"""The small fixed runs behind the golden files (`tests/golden/`, `tests/test_golden.py`).

Each run is tiny (a 24x32 image or an 8x16x16 volume, a few iterations, few channels) so
that the whole set takes seconds; together they cover SGSCN in 2D, in 3D with a spacing,
in slice mode, each baseline, and the data-set runner with its scores.
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

import jax
import numpy as np

from sgscn_jax import Config, baselines, registry, segment_one, volume
from sgscn_jax.data import synthetic

SMALL = Config(n_channels=12, iterations=5, early_stop=False)
EARLY = Config(n_channels=12, iterations=8, min_labels=6)


def image(seed: int = 0):
  return synthetic.lesion_image(seed, (24, 32))[0].astype(np.float32)


def small_volume():
  rng = np.random.default_rng(0)
  z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (8, 16, 16)], indexing="ij")
  vol = (x ** 2 + y ** 2 + z ** 2 < 0.4).astype(np.float32) * 0.6 + 0.2
  return (vol + rng.normal(scale=0.05, size=vol.shape)).astype(np.float32)[..., None]


KEY_SEED = 7
BASELINES = {
    "kmeans": baselines.KMeansConfig(k=3, restarts=2, iterations=6),
    "deepcluster": baselines.DeepClusterConfig(rounds=2, steps_per_round=2, feature_channels=8,
                                               kmeans_restarts=1, kmeans_iterations=5),
    "iic": baselines.IICConfig(steps=3, feature_channels=8),
}


def _baseline(name):
  key = jax.random.key(KEY_SEED)
  seg = registry.get_method(name).segment_batch(key[None], image(2)[None], BASELINES[name])
  return jax.tree.map(lambda a: a[0], seg)


# Every golden run by name, each a function of nothing (so that a test computes only its own).
RUNS = {
    "sgscn_2d": lambda: segment_one(jax.random.key(KEY_SEED), image(0), SMALL),
    "sgscn_2d_early_stop": lambda: segment_one(jax.random.key(KEY_SEED), image(1), EARLY),
    "sgscn_3d": lambda: volume.segment_volume(jax.random.key(KEY_SEED), small_volume(), SMALL,
                                              mode="3d", spacing=(2.0, 1.0, 1.0)),
    "sgscn_slices": lambda: volume.segment_volume(jax.random.key(KEY_SEED), small_volume(),
                                                  SMALL, mode="slices"),
    **{name: (lambda name=name: _baseline(name)) for name in BASELINES},
}


def run(name):
  """The `Segmentation` of the golden run `name` (host arrays)."""
  return jax.device_get(RUNS[name]())


def run_all():
  """`{name: Segmentation}` of every golden run (host arrays)."""
  return {name: run(name) for name in RUNS}


def runner_rows():
  """The rows (every score) of a two-image demo data-set run through the runner."""
  from sgscn_jax.data.datasets import demo
  from sgscn_jax.running import images as image_runs
  cases = demo.list_cases(None, n=2, shape=(32, 32), seed=0)
  with tempfile.TemporaryDirectory() as tmp:
    options = image_runs.RunOptions(out_dir=tmp, size=None, batch_size=2, montage_cases=0)
    result = image_runs.run_dataset(cases, demo.load_case, SMALL, options)
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in result.rows]
    labels = {p.stem: np.asarray(__import__("imageio.v3").v3.imread(p)).tolist()
              for p in sorted((Path(tmp) / "labels").glob("*.png"))}
  return json.loads(json.dumps({"rows": rows, "labels": labels}, default=str))


def machine():
  """What the golden files were made on: bit-for-bit equality is promised there only."""
  flags = ""
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("flags"):
        flags = " ".join(sorted(f for f in line.split(":", 1)[1].split() if f.startswith("avx")))
        break
  except OSError:
    pass
  return {"jax": jax.__version__, "machine": platform.machine(), "cpu_avx_flags": flags}
