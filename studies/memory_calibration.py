r"""Measures the peak memory of real SGSCN runs and compares it with `sgscn_jax.volume.memory`.

Each measurement runs in a fresh subprocess (so one run's peak cannot hide another's):
a random volume of the given shape is segmented for `--iterations` steps (no early
stop) and the process reports its peak resident set size (`resource.getrusage`,
`ru_maxrss`, which includes the compiler's own peak) and the compiled program's
temporary buffer size (`memory_analysis().temp_size_in_bytes`). The constants of
`sgscn_jax/memory.py` were fitted to the output of

  nice -n 19 python -m studies.memory_calibration

Prints one JSON line per run and a final table (Markdown) of estimate vs measurement.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string(
    "run", ["3d:16x32x32:32", "3d:32x64x64:16", "3d:32x64x64:32", "3d:32x64x64:64",
            "3d:48x96x96:32", "slices:32x64x64:32", "slices:16x128x128:64"],
    "mode:DxHxW:channels, repeatable.")
flags.DEFINE_integer("iterations", 2, "Iterations per run (no early stop).")
flags.DEFINE_string("worker", None, "Internal: run one measurement and print JSON.")


def _worker(spec: str, iterations: int) -> dict:
  import jax
  import numpy as np
  from sgscn_jax import Config
  from sgscn_jax import volume
  from sgscn_jax.core import batching as _batching
  mode, shape, channels = spec.split(":")
  shape = tuple(int(n) for n in shape.split("x"))
  config = Config(n_channels=int(channels), iterations=iterations, early_stop=False)
  vol = np.random.default_rng(0).random(shape + (1,), dtype=np.float32)
  key = jax.random.key(0)
  start = time.perf_counter()
  temp = None
  if mode == "3d":
    compiled = _batching.compile_segment_one(vol.shape, config)
    analysis = compiled.memory_analysis()
    temp = None if analysis is None else analysis.temp_size_in_bytes
    jax.block_until_ready(compiled(key, vol, None).labels)
  else:
    jax.block_until_ready(volume.segment_slices(key, vol, config, consistent=False).labels)
  return {"mode": mode, "shape": list(shape), "channels": int(channels),
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
          "temp_bytes": temp, "seconds": round(time.perf_counter() - start, 2)}


def measure(spec: str, iterations: int) -> dict:
  """Runs `spec` ("mode:DxHxW:C") in a subprocess; its JSON result."""
  out = subprocess.run([sys.executable, "-m", "studies.memory_calibration",
                        f"--worker={spec}", f"--iterations={iterations}"],
                       capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.worker:
    print(json.dumps(_worker(FLAGS.worker, FLAGS.iterations)))
    return 0
  from sgscn_jax.volume import memory
  rows = []
  for spec in FLAGS.run:
    row = measure(spec, FLAGS.iterations)
    row["estimate_bytes"] = memory.estimate_bytes(tuple(row["shape"]), 1, row["channels"],
                                                  mode=row["mode"])
    print(json.dumps(row), flush=True)
    rows.append(row)
  print("\n| mode | shape | channels | measured peak RSS (MB) | estimate (MB) | XLA temp (MB) "
        "| s |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    temp = "" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 1e6:.0f}"
    print(f"| {r['mode']} | {'x'.join(map(str, r['shape']))} | {r['channels']} | "
          f"{r['peak_rss_bytes'] / 1e6:.0f} | {r['estimate_bytes'] / 1e6:.0f} | {temp} | "
          f"{r['seconds']} |")
  return 0


if __name__ == "__main__":
  app.run(main)
