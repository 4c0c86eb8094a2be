r"""Speed and memory of SGSCN on this machine: one image, batches, and PyTorch side by side.

Every figure comes from a fresh child process (so its peak resident memory is its own) and is
a median over --repeats timed runs. Prints a readable table on stderr and one JSON object on
stdout.

  loop        ms_per_iteration  median over repeats of (t(n2 iterations) - t(n1)) / (n2 - n1)
                                inside the real `lax.fori_loop` (set-up and the final forward
                                pass cancel out)
              gflops_per_s      achieved rate under the FLOP model below
              matmul / conv     a [HW, 9C] @ [9C, C] fp32 matmul and XLA's forward 3x3 conv
                                C -> C, measured in the same process
              compile_seconds   first call minus a warm call of the same program
              recompiled        whether a second call with new values, same shapes, compiled
              peak_rss_mib      peak resident memory of the process
  batch B     images_per_s      B images of --batch_image_size, `segment_batch` with the default
                                batching (and with "vmap"), warm, vs B one-at-a-time runs
  torch       ms_per_iteration  the same loop in PyTorch eager (experiments/torch_loop.py), when
                                torch is importable; `ratio` = JAX / PyTorch from this run

FLOP model (shared PERF.md): the forward pass costs 2 HW (9 c_in C + (n_conv - 1) 9 C^2 + C^2);
a training iteration about 2x the forward for the first layer and 3x for the others:
  flops = 2 HW (2 * 9 c_in C + 3 (n_conv - 1) 9 C^2 + 3 C^2)   (~611,000 HW for RGB, C = 100).

  python -m experiments.benchmark --size 256                      # the issue's 256x256 target
  python -m experiments.benchmark --size 572x764 --batch_sizes ""  # full PH2 resolution
  python -m experiments.benchmark --method s3net --size 256 --batch_sizes "" --notorch
      # S3-Net's network and losses (the registry's preset, --n_channels); the FLOP model is
      # SGSCN's, so its GFLOP/s fields are left out for s3net
  python -m experiments.benchmark --method s3net --compare sgscn --size 256 --batch_sizes "" \
      --torch_python /path/to/python-with-torchvision
      # S3-Net, SGSCN and S3-Net in PyTorch (torchvision's deform_conv2d) in one run:
      # ratio_to_compare = S3-Net / SGSCN, ratio_to_torch = JAX / PyTorch (docs/S3NET.md)
  python -m experiments.benchmark --method cuts
      # CUTS: the fit on 40 PH2 images at 256 px, then seconds per image
      # (experiments/benchmark_cuts.py, docs/CUTS.md)
  python -m experiments.benchmark --method distil --json_out docs/bench/distil_ph2_256.json
      # distil: the teacher and the student's fit on 40 PH2 images at 256 px, then its
      # batched inference per 256x256 image beside SGSCN's seconds per image
      # (experiments/benchmark_distil.py, docs/DISTIL.md)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import flags

from experiments import benchmark_cuts   # defines the --cuts_* flags (imports no JAX)
from experiments import benchmark_distil   # defines the --distil_* flags (imports no JAX)
from sgscn_jax.reporting import console

FLAGS = flags.FLAGS
TIMED = ("sgscn", "s3net", "cuts", "distil")
flags.DEFINE_string("method", "sgscn", "The method timed, in the method grammar (docs/USAGE.md): "
                    "sgscn (--n_conv blocks), s3net (its preset), cuts or distil; the sizes "
                    "are this "
                    "script's flags.")
flags.DEFINE_string("size", "256", "Image size: N (square) or HxW.")
flags.DEFINE_integer("channels", 3, "Input channels (1 grey, 3 RGB).")
flags.DEFINE_integer("n_channels", 100, "Network channels C.")
flags.DEFINE_integer("n_conv", 2, "3x3 blocks.")
flags.DEFINE_integer("n1", 2, "Short run (iterations).")
flags.DEFINE_integer("n2", 8, "Long run (iterations).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; medians are reported.")
flags.DEFINE_string("batch_sizes", "1,2,4,8", "Batch sizes for images/s (empty: skip).")
flags.DEFINE_integer("batch_image_size", 128, "Image side for the batch measurements.")
flags.DEFINE_integer("batch_iterations", 10, "Iterations per image in the batch measurements.")
flags.DEFINE_bool("torch", True, "Also time the PyTorch loop when torch is importable.")
flags.DEFINE_string("torch_python", None, "The Python that runs the PyTorch child (default: "
                    "this one); s3net's needs torchvision.ops.deform_conv2d importable there.")
flags.DEFINE_enum("compare", None, ["sgscn", "s3net"], "Also time this method's loop in the "
                  "same run (its own child, after --method's) and report the ratio.")
flags.DEFINE_float("deform_bound", None, "s3net: Config.deform_offset_bound (0: the exact v1 "
                   "deformable conv; default: the preset's). The PyTorch loop squashes its "
                   "offsets the same way.")
flags.DEFINE_string("json_out", None, "Also write the JSON here.")
flags.DEFINE_string("child", None, "Internal: run one measurement ('loop', 'batch:B', 'torch').")


def parse_size(text: str) -> tuple:
  if "x" in text.lower():
    h, w = text.lower().split("x")
    return int(h), int(w)
  return int(text), int(text)


def iteration_flops(hw: int, c_in: int, c: int, n_conv: int) -> float:
  return 2.0 * hw * (2 * 9 * c_in * c + 3 * (n_conv - 1) * 9 * c * c + 3 * c * c)


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _timed(fn, *args, repeats: int) -> list:
  import jax
  out = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    out.append(time.perf_counter() - t)
  return out


def _rates(hw: int, shape: tuple, c: int, repeats: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from sgscn_jax.core import conv
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.normal(size=(hw, 9 * c)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(9 * c, c)), jnp.float32)
  mm = jax.jit(jnp.matmul)
  jax.block_until_ready(mm(a, b))
  x = jnp.asarray(rng.normal(size=shape + (c,)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, c, c)), jnp.float32)
  cv = jax.jit(conv.conv_same_reference)
  jax.block_until_ready(cv(x, w))
  flops = 2.0 * hw * 9 * c * c
  return {"matmul_gflops_per_s": flops / statistics.median(_timed(mm, a, b, repeats=repeats)) / 1e9,
          "conv_gflops_per_s": flops / statistics.median(_timed(cv, x, w, repeats=repeats)) / 1e9}


def child_loop() -> dict:
  import jax
  from sgscn_jax import Config
  from sgscn_jax.core import batching
  shape = parse_size(FLAGS.size)
  image = jax.random.uniform(jax.random.key(1), shape + (FLAGS.channels,))
  key = jax.random.key(0)
  runs, first = {}, {}
  for n in (FLAGS.n1, FLAGS.n2):
    cfg = Config(n_channels=FLAGS.n_channels, n_conv=FLAGS.n_conv, iterations=n, early_stop=False)
    if FLAGS.method == "s3net":
      import dataclasses
      from sgscn_jax import builtin_methods
      cfg = dataclasses.replace(builtin_methods.S3NET_CONFIG, n_channels=FLAGS.n_channels,
                                iterations=n, early_stop=False,
                                deform_offset_bound=_deform_bound())
    # The jitted program itself (`segment_one` without its host-side checks): the first
    # call compiles it, and the recompilation check below reuses its cache entry.
    t = time.perf_counter()
    jax.block_until_ready(batching.SGSCN.one(key, image, cfg, None))
    first[n] = time.perf_counter() - t
    runs[n] = _timed(batching.SGSCN.one, key, image, cfg, None, repeats=FLAGS.repeats)
  per_iter = statistics.median((b - a) / (FLAGS.n2 - FLAGS.n1)
                               for a, b in zip(runs[FLAGS.n1], runs[FLAGS.n2]))
  # A second call with other values and the same shapes must reuse the compiled program.
  before = batching.SGSCN.one._cache_size()
  jax.block_until_ready(batching.segment_one(jax.random.key(7), image * 0.5, cfg))
  recompiled = batching.SGSCN.one._cache_size() != before
  hw = shape[0] * shape[1]
  if FLAGS.method == "s3net":  # the bound the network was built with, read back from it
    from sgscn_jax.core import network
    out_config = {"deform_offset_bound": cfg.deform_offset_bound,
                  "network_offset_bound": network.module(cfg).offset_bound}
  else:
    out_config = {}
  flops = iteration_flops(hw, FLAGS.channels, FLAGS.n_channels, FLAGS.n_conv)
  out = {"ms_per_iteration": 1e3 * per_iter,
         "gflop_per_iteration": flops / 1e9,
         "gflops_per_s": flops / per_iter / 1e9,
         "compile_seconds": first[FLAGS.n2] - statistics.median(runs[FLAGS.n2]),
         "recompiled": recompiled,
         "peak_rss_mib": _peak_rss_mib(), **out_config}
  if per_iter <= 0:  # a loaded machine: the n2 run was no slower than the n1 run
    out["warning"] = (f"t(n2) - t(n1) <= 0: noise exceeds {FLAGS.n2 - FLAGS.n1} iteration(s); "
                      "this ms / iteration is not a measurement (raise --n2 or --repeats)")
  out.update(_rates(hw, shape, FLAGS.n_channels, FLAGS.repeats + 2))
  out["fraction_of_matmul"] = out["gflops_per_s"] / out["matmul_gflops_per_s"]
  if FLAGS.method != "sgscn":  # the FLOP model is SGSCN's network
    for name in ("gflop_per_iteration", "gflops_per_s", "fraction_of_matmul"):
      out[name] = None
  return out


def child_batch(b: int) -> dict:
  import jax
  import numpy as np
  from sgscn_jax import Config
  from sgscn_jax.core import batching as _batching
  s = FLAGS.batch_image_size
  images = np.asarray(jax.random.uniform(jax.random.key(1), (b, s, s, FLAGS.channels)))
  keys = _batching.image_keys(0, b)
  cfg = Config(n_channels=FLAGS.n_channels, n_conv=FLAGS.n_conv,
               iterations=FLAGS.batch_iterations, early_stop=False)
  out = {}
  for batching in ("default", "vmap"):
    mode = None if batching == "default" else batching
    _batching.segment_batch(keys, images, cfg, batching=mode)
    t = statistics.median(_timed(lambda: _batching.segment_batch(keys, images, cfg, batching=mode),
                                 repeats=FLAGS.repeats))
    out[f"{batching}_images_per_s"] = b / t
  out["default_batching"] = _batching.default_batching()
  _batching.segment_one(keys[0], images[0], cfg)
  single = statistics.median(_timed(
      lambda: [_batching.segment_one(keys[i], images[i], cfg).labels for i in range(b)],
      repeats=FLAGS.repeats))
  out["one_at_a_time_images_per_s"] = b / single
  out["peak_rss_mib"] = _peak_rss_mib()
  return out


def _deform_bound():
  """--deform_bound as `Config.deform_offset_bound` (0 -> None, unset -> the preset's)."""
  if FLAGS.deform_bound is None:
    from sgscn_jax import builtin_methods
    return builtin_methods.S3NET_CONFIG.deform_offset_bound
  return FLAGS.deform_bound or None


def child_torch() -> dict:
  import numpy as np
  from experiments import torch_loop
  shape = parse_size(FLAGS.size)
  image = np.random.default_rng(1).uniform(size=shape + (FLAGS.channels,)).astype(np.float32)
  extra = {}
  if FLAGS.method == "s3net":  # the preset's network, losses and optimiser (passed in)
    preset = json.loads(FLAGS.child.partition(":")[2])
    run = torch_loop.time_s3net_iterations
    kw = dict(n_channels=FLAGS.n_channels, n_blocks=preset["n_conv"],
              weights=dict(preset["loss_weights"]), lr=preset["learning_rate"],
              momentum=preset["momentum"], offset_bound=preset["deform_offset_bound"])
    import torchvision
    extra = {"torchvision": torchvision.__version__, "offset_bound": kw["offset_bound"]}
  else:
    run = torch_loop.time_iterations
    kw = dict(n_channels=FLAGS.n_channels, n_conv=FLAGS.n_conv)
  run(image, FLAGS.n1, **kw)  # warm-up
  per_iter = [(run(image, FLAGS.n2, **kw) - run(image, FLAGS.n1, **kw)) / (FLAGS.n2 - FLAGS.n1)
              for _ in range(FLAGS.repeats)]
  import torch
  return {"ms_per_iteration": 1e3 * statistics.median(per_iter), "torch": torch.__version__,
          "threads": torch.get_num_threads(), "peak_rss_mib": _peak_rss_mib(), **extra}


def _run_child(kind: str, argv: list, method: str = None, python: str = None) -> dict:
  """One measurement in a fresh process with this process's flags (`method` replaces
  --method; `python` is the interpreter, default this one)."""
  del argv  # absl strips flags from it; the children get the same flags as this process
  args = [a for a in sys.argv[1:] if not a.startswith(("--child", "--json_out"))]
  if method is not None:
    args = [a for a in args if not a.startswith("--method")] + [f"--method={method}"]
  proc = subprocess.run([python or sys.executable, "-m", "experiments.benchmark",
                         f"--child={kind}", *args], capture_output=True, text=True)
  if proc.returncode != 0:
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_available() -> bool:
  import importlib.util
  return importlib.util.find_spec("torch") is not None


def _rounded(value):
  if isinstance(value, float):
    return round(value, 3)
  if isinstance(value, dict):
    return {k: _rounded(v) for k, v in value.items()}
  return value


def table(report: dict) -> str:
  loop = report["loop"]
  name = {"sgscn": "SGSCN", "s3net": "S3-Net"}[report.get("method", "sgscn")]
  lines = [f"{name} iteration, {report['image']} (C={report['n_channels']}), "
           f"{report['devices']}, load average before {report['load_average']}",
           f"  ms / iteration           {loop.get('ms_per_iteration', float('nan')):9.1f}",
           f"  achieved GFLOP/s         {loop.get('gflops_per_s') or float('nan'):9.1f}"
           f"   (matmul {loop.get('matmul_gflops_per_s', float('nan')):.1f}, "
           f"forward conv {loop.get('conv_gflops_per_s', float('nan')):.1f}; "
           f"fraction of matmul {loop.get('fraction_of_matmul') or float('nan'):.3f})",
           f"  compile s / recompiled   {loop.get('compile_seconds', float('nan')):9.2f}"
           f"   / {loop.get('recompiled')}",
           f"  peak RSS MiB             {loop.get('peak_rss_mib', float('nan')):9.0f}"]
  if "warning" in loop:
    lines.append(f"  WARNING: {loop['warning']}")
  if "compare" in report:
    other = {"sgscn": "SGSCN", "s3net": "S3-Net"}[report["compare"]["method"]]
    other_loop = report["compare"]
    ms = other_loop.get('ms_per_iteration', float('nan'))
    lines.append(f"  {other} ms / iteration {ms:11.1f}"
                 f"   {name} / {other} = {report.get('ratio_to_compare', float('nan')):.3f}"
                 f"   ({other} peak RSS {other_loop.get('peak_rss_mib', float('nan')):.0f} MiB)")
    if "warning" in other_loop:
      lines.append(f"  WARNING ({other}): {other_loop['warning']}")
  if "torch" in report:
    t = report["torch"]
    lines.append(f"  PyTorch ms / iteration   {t.get('ms_per_iteration', float('nan')):9.1f}"
                 f"   JAX / PyTorch = {report.get('ratio_to_torch', float('nan')):.3f}"
                 f"   (torch peak RSS {t.get('peak_rss_mib', float('nan')):.0f} MiB)")
  for b, r in report.get("batches", {}).items():
    lines.append(f"  batch {b:>2} at {report['batch_image_size']}^2: images/s "
                 f"default({r.get('default_batching')}) "
                 f"{r.get('default_images_per_s', float('nan')):.3f}"
                 f"  vmap {r.get('vmap_images_per_s', float('nan')):.3f}"
                 f"  one-at-a-time {r.get('one_at_a_time_images_per_s', float('nan')):.3f}"
                 f"  peak RSS {r.get('peak_rss_mib', float('nan')):.0f} MiB")
  return "\n".join(lines)


def timed_method(text: str) -> str:
  """The name of the method --method names (the registry's grammar), which must be one this
  benchmark times, with its own settings; a `UserError` (one line, exit 2) otherwise."""
  from sgscn_jax import registry
  from sgscn_jax.errors import UserError
  spec = registry.parse_method(text)
  if spec.name not in TIMED or spec.options or spec.members:
    raise UserError(f"--method {text}: the benchmark times {', '.join(TIMED)} with its own "
                    "size flags (--size, --n_channels, --n_conv); name one of them alone")
  return spec.name


def main(argv):
  if FLAGS.child:
    kind = FLAGS.child
    result = (child_loop() if kind == "loop" else child_torch() if kind.startswith("torch")
              else child_batch(int(kind.split(":")[1])))
    print(json.dumps(result))
    return 0
  FLAGS.method = timed_method(FLAGS.method)
  if FLAGS.method in ("cuts", "distil"):   # a data-set method: its fit, then per image
    _write_report((benchmark_cuts if FLAGS.method == "cuts" else benchmark_distil).run())
    return 0
  import jax
  h, w = parse_size(FLAGS.size)
  if FLAGS.method == "s3net":
    from sgscn_jax import builtin_methods
    n_conv = builtin_methods.S3NET_CONFIG.n_conv  # I-LKA blocks of the preset
  else:
    n_conv = FLAGS.n_conv
  report = {"method": FLAGS.method, "image": [h, w, FLAGS.channels],
            "n_channels": FLAGS.n_channels,
            "n_conv": n_conv, "repeats": FLAGS.repeats, "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "batch_image_size": FLAGS.batch_image_size}
  if FLAGS.method == "s3net":
    report["deform_offset_bound"] = _deform_bound()
  report["loop"] = _run_child("loop", argv)
  if FLAGS.compare:
    report["compare"] = dict(_run_child("loop", argv, method=FLAGS.compare),
                             method=FLAGS.compare)
    if "ms_per_iteration" in report["compare"] and "ms_per_iteration" in report["loop"]:
      report["ratio_to_compare"] = (report["loop"]["ms_per_iteration"]
                                    / report["compare"]["ms_per_iteration"])
  if FLAGS.torch and (FLAGS.torch_python or _torch_available()):
    kind = "torch"
    if FLAGS.method == "s3net":  # the preset, so the PyTorch child needs no JAX import
      from sgscn_jax import builtin_methods
      preset = builtin_methods.S3NET_CONFIG
      kind = "torch:" + json.dumps({
          "n_conv": preset.n_conv, "loss_weights": preset.loss_weights,
          "learning_rate": preset.learning_rate, "momentum": preset.momentum,
          "deform_offset_bound": report["deform_offset_bound"]})
    report["torch"] = _run_child(kind, argv, python=FLAGS.torch_python)
    if "ms_per_iteration" in report["torch"] and "ms_per_iteration" in report["loop"]:
      report["ratio_to_torch"] = (report["loop"]["ms_per_iteration"]
                                  / report["torch"]["ms_per_iteration"])
  batches = [int(b) for b in FLAGS.batch_sizes.split(",") if b.strip()]
  report["batches"] = {str(b): _run_child(f"batch:{b}", argv) for b in batches}
  report = _rounded(report)
  print(table(report), file=sys.stderr)
  _write_report(report)
  return 0


def _write_report(report: dict) -> None:
  """The report as one JSON line on stdout, and in --json_out when given."""
  text = json.dumps(report)
  print(text)
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  console.run(main)
