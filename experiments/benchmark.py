r"""Speed of one SGSCN iteration inside the real loop, against this machine's fp32 matmul rate.

Prints one JSON object (and a readable line per figure on stderr):
  ms_per_iteration      median over --repeats of (t(N2 iterations) - t(N1)) / (N2 - N1), so
                        initialisation and the final forward pass are not counted
  gflops_per_s          achieved rate under the FLOP model below
  matmul_gflops_per_s   a [HW, 9C] @ [9C, C] fp32 matmul at the top level of a jit, same run
  conv_gflops_per_s     XLA's forward 3x3 conv C -> C, same run
  fraction_of_matmul    gflops_per_s / matmul_gflops_per_s (the engine issue asks >= 0.40)
  compile_seconds       first call minus a warm call of the same program

FLOP model (docs/PERFORMANCE.md, from shared PERF.md): the forward pass costs
2 HW (9 c_in C + (n_conv - 1) 9 C^2 + C^2); a training iteration costs about 2x the forward
for the first layer (no input gradient) and 3x for the others:
  flops = 2 HW (2 * 9 c_in C + 3 (n_conv - 1) 9 C^2 + 3 C^2)   (~611,000 HW for RGB, C = 100).

  python -m experiments.benchmark --size 256 --channels 3
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from absl import app
from absl import flags

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax import Config, optimize

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Image height and width.")
flags.DEFINE_integer("channels", 3, "Input channels (1 grey, 3 RGB).")
flags.DEFINE_integer("n_channels", 100, "Network channels C.")
flags.DEFINE_integer("n_conv", 2, "3x3 blocks.")
flags.DEFINE_integer("n1", 2, "Short run (iterations).")
flags.DEFINE_integer("n2", 8, "Long run (iterations).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; medians are reported.")
flags.DEFINE_string("json_out", None, "Also write the JSON here.")


def iteration_flops(hw: int, c_in: int, c: int, n_conv: int) -> float:
  return 2.0 * hw * (2 * 9 * c_in * c + 3 * (n_conv - 1) * 9 * c * c + 3 * c * c)


def _time(fn, *args, repeats: int) -> list[float]:
  out = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    out.append(time.perf_counter() - t)
  return out


def matmul_rate(hw: int, c: int, repeats: int) -> float:
  a = jnp.asarray(np.random.default_rng(0).normal(size=(hw, 9 * c)), jnp.float32)
  b = jnp.asarray(np.random.default_rng(1).normal(size=(9 * c, c)), jnp.float32)
  f = jax.jit(jnp.matmul)
  jax.block_until_ready(f(a, b))
  return 2.0 * hw * 9 * c * c / min(_time(f, a, b, repeats=repeats)) / 1e9


def conv_rate(size: int, c: int, repeats: int) -> float:
  from sgscn_jax import conv
  x = jnp.asarray(np.random.default_rng(0).normal(size=(size, size, c)), jnp.float32)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, c, c)), jnp.float32)
  f = jax.jit(conv.conv_same_reference)
  jax.block_until_ready(f(x, w))
  return 2.0 * size * size * 9 * c * c / min(_time(f, x, w, repeats=repeats)) / 1e9


def loop_timing(size: int, c_in: int, config: Config, n1: int, n2: int, repeats: int) -> dict:
  image = jax.random.uniform(jax.random.key(1), (size, size, c_in))
  key = jax.random.key(0)
  results = {}
  for n in (n1, n2):
    cfg = Config(n_channels=config.n_channels, n_conv=config.n_conv, iterations=n,
                 early_stop=False)
    t = time.perf_counter()
    jax.block_until_ready(optimize._segment_one_jit(key, image, cfg))
    first = time.perf_counter() - t
    runs = _time(optimize._segment_one_jit, key, image, cfg, repeats=repeats)
    results[n] = (first, runs)
  per_iter = [(b - a) / (n2 - n1) for a, b in zip(results[n1][1], results[n2][1])]
  compile_s = results[n2][0] - statistics.median(results[n2][1])
  return {"ms_per_iteration": 1e3 * statistics.median(per_iter),
          "compile_seconds": compile_s}


def main(argv):
  del argv
  config = Config(n_channels=FLAGS.n_channels, n_conv=FLAGS.n_conv)
  hw = FLAGS.size * FLAGS.size
  timing = loop_timing(FLAGS.size, FLAGS.channels, config, FLAGS.n1, FLAGS.n2, FLAGS.repeats)
  flops = iteration_flops(hw, FLAGS.channels, config.n_channels, config.n_conv)
  achieved = flops / (timing["ms_per_iteration"] / 1e3) / 1e9
  mm = matmul_rate(hw, config.n_channels, FLAGS.repeats + 2)
  cv = conv_rate(FLAGS.size, config.n_channels, FLAGS.repeats + 2)
  report = {
      "image": [FLAGS.size, FLAGS.size, FLAGS.channels],
      "n_channels": config.n_channels, "n_conv": config.n_conv,
      "ms_per_iteration": round(timing["ms_per_iteration"], 2),
      "gflop_per_iteration": round(flops / 1e9, 3),
      "gflops_per_s": round(achieved, 1),
      "matmul_gflops_per_s": round(mm, 1),
      "conv_gflops_per_s": round(cv, 1),
      "fraction_of_matmul": round(achieved / mm, 3),
      "compile_seconds": round(timing["compile_seconds"], 2),
      "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
  }
  for k, v in report.items():
    print(f"{k:>22}: {v}", file=sys.stderr)
  text = json.dumps(report)
  print(text)
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
