"""Devices and processes: a sharded batch equals the unsharded one; two processes equal one.

Forced host devices and `jax.distributed` both have to be set up before JAX starts, so
these tests run Python in subprocesses (tiny 16x16 images, 2 iterations, 4 channels). The
command-line runs share a persistent compilation cache, so only the first one compiles.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from sgscn_jax.running import distributed
from sgscn_jax.data import synthetic
from sgscn_jax.data.datasets import Case, folder

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 8
TINY_FLAGS = ("--iterations=2", "--n_channels=4", "--n_conv=1", "--size=native",
              "--batch_size=2", "--montage=2")

SHARDED_SCRIPT = r"""
import sys
import jax, numpy as np
from sgscn_jax import Config, registry, image_keys, segment_batch
from sgscn_jax.core import sharding
from sgscn_jax.data import synthetic
assert jax.local_device_count() == 4, jax.devices()
images = np.stack([synthetic.lesion_image(i, (16, 16))[0] for i in range(8)])
keys = image_keys(0, 8)
config = Config(n_channels=4, n_conv=1, iterations=2, early_stop=False)
mesh = sharding.batch_mesh()
plain = segment_batch(keys, images, config)
sharded = segment_batch(keys, images, config, mesh=mesh)
assert sharded.labels.sharding.spec == jax.sharding.PartitionSpec("batch"), sharded.labels.sharding
assert len(sharded.labels.sharding.device_set) == 4
kmeans = registry.get_method("kmeans").segment_batch
km_config = registry.get_method("kmeans").default_config
try:
  segment_batch(keys[:6], images[:6], config, mesh=mesh)
  error = ""
except ValueError as e:
  error = str(e)
np.savez(sys.argv[1], labels=plain.labels, sharded_labels=sharded.labels,
         total=plain.history.total, sharded_total=sharded.history.total,
         iterations=plain.iterations, sharded_iterations=sharded.iterations,
         kmeans=kmeans(keys, images, km_config).labels,
         sharded_kmeans=kmeans(keys, images, km_config, mesh=mesh).labels,
         error=np.array(error))
"""

# Process 1 of the "dies midway" run: a hard exit (no clean-up, like a killed machine) when
# it is about to segment its second batch.
DYING_SCRIPT = r"""
import os
from absl import app
from experiments import segment
from sgscn_jax.running import images as image_runs
flush, batches = image_runs.ImageDriver.flush, []
def flush_then_die(self, shape):
  if len(batches) == 1:
    os._exit(86)
  batches.append(shape)
  flush(self, shape)
image_runs.ImageDriver.flush = flush_then_die
app.run(segment.main)
"""


_CACHE = {}  # the compilation cache folder, set by the `data_and_single` fixture


def _env(**extra):
  cache = {"JAX_COMPILATION_CACHE_DIR": _CACHE["dir"],
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"} if _CACHE else {}
  return dict(os.environ, PYTHONPATH=str(ROOT), **cache, **extra)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_sharded_batch_equals_unsharded_on_four_devices(tmp_path):
  out = tmp_path / "labels.npz"
  proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(out)], cwd=ROOT,
                        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  r = np.load(out)
  assert r["labels"].shape == (8, 16, 16)
  np.testing.assert_array_equal(r["sharded_labels"], r["labels"])  # bit for bit
  np.testing.assert_array_equal(r["sharded_iterations"], r["iterations"])
  # Per-device programs of 2 images may reassociate float sums: the losses agree to 1e-5.
  np.testing.assert_allclose(r["sharded_total"], r["total"], rtol=1e-5)
  np.testing.assert_array_equal(r["sharded_kmeans"], r["kmeans"])
  assert "cannot be split evenly over 4 devices" in str(r["error"])


def test_deal_balances_cost_and_is_round_robin_for_equal_costs():
  assert distributed.deal([1] * 7, 3) == [0, 1, 2, 0, 1, 2, 0]
  costs = [5, 1, 1, 4, 2, 3]
  owners = distributed.deal(costs, 2)
  assert owners == [0, 0, 1, 1, 0, 1]  # 5,4 -> 0,1; 3 -> 1; 2 -> 0; then 1, 1
  loads = [sum(c for c, o in zip(costs, owners) if o == p) for p in range(2)]
  assert loads == [8, 8]
  rng = np.random.default_rng(0)
  costs = list(rng.integers(1, 100, 200))
  owners = distributed.deal(costs, 7)
  loads = np.bincount(owners, weights=costs, minlength=7)
  assert loads.max() - loads.min() <= max(costs)  # greedy LPT bound
  assert distributed.deal(costs, 7) == owners  # deterministic
  with pytest.raises(ValueError):
    distributed.deal([1], 0)


def test_case_cost_is_the_working_pixel_count(tmp_path):
  iio.imwrite(tmp_path / "a.png", np.zeros((30, 50), np.uint8))
  case = Case("a", str(tmp_path / "a.png"), None, {})
  assert distributed.case_cost(case) == 32 * 48  # buckets of 16
  assert distributed.case_cost(case, size=100, bucket_multiple=1) == 60 * 100
  assert distributed.case_cost(Case("d", "synthetic:0:0:24x40", None, {"shape": (24, 40)}),
                               bucket_multiple=8) == 24 * 40
  assert distributed.case_cost(Case("x", str(tmp_path / "missing.png"), None, {})) == 1


def _write_cases(root: Path):
  """case0..case7 (16x16) and case0b, a PNG cut after its header: it has a size, so it is
  dealt like the others (to process 1, as the second of nine equal cases by id), and its
  decoding fails."""
  (root / "images").mkdir(parents=True)
  (root / "masks").mkdir()
  for i in range(N_CASES):
    image, mask = synthetic.lesion_image(i, (16, 16))
    iio.imwrite(root / "images" / f"case{i}.png", (image * 255).astype(np.uint8))
    iio.imwrite(root / "masks" / f"case{i}.png", mask.astype(np.uint8) * 255)
  (root / "images" / "case0b.png").write_bytes((root / "images" / "case0.png").read_bytes()[:60])
  return folder.list_cases(root, images_dir=root / "images", masks_dir=root / "masks")


def _command(data: Path, out: Path, *extra, script=None):
  head = [sys.executable] + (["-c", script] if script else ["-m", "experiments.segment"])
  return head + ["--dataset=folder", f"--images={data / 'images'}",
                 f"--masks={data / 'masks'}", f"--out_dir={out}", *TINY_FLAGS, *extra]


def _run_pair(data, out, *extra, dying_script=None, env=None):
  """Processes 0 and 1 on localhost; returns their `(returncode, stdout, stderr)`."""
  port = _free_port()
  procs = []
  for pid in (0, 1):
    flags = (f"--coordinator_address=localhost:{port}", "--num_processes=2",
             f"--process_id={pid}", *extra)
    script = dying_script if pid == 1 else None
    procs.append(subprocess.Popen(_command(data, out, *flags, script=script), cwd=ROOT,
                                  env=_env(**(env or {})), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  text=True))
  results = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=600)
    results.append((p.returncode, stdout, stderr))
  return results


def _comparable_summary(out: Path):
  summary = json.loads((out / "summary.json").read_text())
  summary.pop("seconds_per_case")
  return summary


def _rows(out: Path):
  rows = {}
  for path in sorted((out / "cases").glob("*.json")):
    row = json.loads(path.read_text())
    for timing in ("seconds", "object_seconds"):  # wall times differ from run to run
      row.pop(timing, None)
    rows[row["case_id"]] = row
  return rows


def _labels(out: Path):
  return {p.stem: iio.imread(p) for p in sorted((out / "labels").glob("*.png"))}


@pytest.fixture(scope="module")
def data_and_single(tmp_path_factory):
  root = tmp_path_factory.mktemp("distributed")
  _CACHE["dir"] = str(root / "jax_cache")
  _write_cases(root / "data")
  proc = subprocess.run(_command(root / "data", root / "single"), cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 1, proc.stderr[-3000:]  # case0b failed
  assert (root / "single" / "failures.csv").read_text().startswith("case_id,path,reason\ncase0b,")
  return root / "data", root / "single"


def _assert_same_run(out: Path, single: Path):
  assert _comparable_summary(out) == _comparable_summary(single)
  assert _rows(out) == _rows(single)
  a, b = _labels(out), _labels(single)
  assert sorted(a) == [f"case{i}" for i in range(N_CASES)] and sorted(a) == sorted(b)
  for case_id in a:
    np.testing.assert_array_equal(a[case_id], b[case_id])
  assert (out / "failures.csv").read_text() == (single / "failures.csv").read_text()
  assert (out / "montage.png").is_file() and (out / "results.csv").is_file()


def test_two_processes_of_two_devices_equal_one_process_of_one(data_and_single, tmp_path):
  data, single = data_and_single
  out = tmp_path / "pair"
  (rc0, stdout0, err0), (rc1, stdout1, err1) = _run_pair(
      data, out, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert rc0 == 1, err0[-3000:]  # a case failed (in process 1's share)
  assert rc1 == 1, err1[-3000:]
  assert "failed: case0b" in err1 and "failed: case0b" not in err0
  assert "dice" in stdout0 and "dice" not in stdout1  # process 0 alone prints the summary
  assert "process 0: 5 case(s)" in err0 and "process 1: 4 case(s)" in err1
  assert "2 local device(s)" in err0 and "2 local device(s)" in err1
  run = json.loads((out / "run.json").read_text())
  assert run["processes"] == 2 and len(run["local_devices"]) == 2
  assert "--process_id=0" in run["argv"]
  _assert_same_run(out, single)  # batches of 2 sharded over 2 devices: the same labels


def test_a_process_dies_midway_and_a_rerun_completes_the_set(data_and_single, tmp_path):
  data, single = data_and_single
  out = tmp_path / "pair"
  (rc0, _, err0), (rc1, _, err1) = _run_pair(data, out, "--heartbeat_timeout=5",
                                             dying_script=DYING_SCRIPT)
  assert rc1 == 86, err1[-3000:]
  assert rc0 == 3, err0[-3000:]
  # Equal sizes are dealt round-robin by id: process 1 had case0b (fails), case2, case4,
  # case6; it finished the batch (case2, case4) and died before publishing its failure.
  assert "2 case(s) missing: case0b, case6" in err0 and "rerun" in err0
  assert not (out / "summary.json").exists() and not (out / "failures.csv").exists()
  finished = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "cases").glob("*")}
  assert sorted(finished) == [f"case{i}.json" for i in (0, 1, 2, 3, 4, 5, 7)]

  (rc0, _, err0), (rc1, _, err1) = _run_pair(data, out)
  assert rc0 == 1, err0[-3000:]  # case0b failed again, now in process 0's share
  assert rc1 == 0, err1[-3000:]
  assert "resuming: 7 of 9" in err0
  assert "process 0: 1 case(s)" in err0 and "process 1: 1 case(s)" in err1  # shared again
  for name, (content, mtime) in finished.items():  # nothing redone, nothing lost
    path = out / "cases" / name
    assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
  _assert_same_run(out, single)


def _table_rows(out: Path, slug: str, seed: int):
  return _rows(out / slug / f"seed{seed}")


def test_a_table_on_two_processes_equals_the_table_of_one(tmp_path):
  """reproduce_tables with a team: every run folder is one round (its cases dealt between
  the two processes), process 0 writes the tables, and every case and table cell equals the
  single process's."""
  from tests.conftest import write_lesion_folder
  write_lesion_folder(tmp_path / "data", n=4, shape=(16, 16))
  data = tmp_path / "data"

  def command(out, *extra):
    return [sys.executable, "-m", "experiments.reproduce_tables", "--quick", "--noablation",
            "--seeds=0,1", "--methods=kmeans:2,otsu", "--dataset=folder",
            f"--images={data / 'images'}", f"--masks={data / 'masks'}", "--size=native",
            "--batch_size=1", "--figure_cases=1", "--limit=4", f"--out_dir={out}", *extra]

  single = subprocess.run(command(tmp_path / "single"), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  procs = [subprocess.Popen(command(tmp_path / "pair", f"--coordinator_address=localhost:{port}",
                                    "--num_processes=2", f"--process_id={pid}"),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for pid in (0, 1)]
  (out0, err0), (out1, err1) = [p.communicate(timeout=600) for p in procs]
  assert procs[0].returncode == 0, err0[-3000:]
  assert procs[1].returncode == 0, err1[-3000:]
  assert "### Table 1" in out0 and "### Table 1" not in out1
  assert "process 1: shares done (0 failed)" in err1
  # Four folders (2 runs x 2 seeds), each dealt: equal sizes go round-robin, two cases each.
  assert err0.count("process 0: 2 case(s) to segment") == 4, err0[-3000:]
  assert err1.count("process 1: 2 case(s) to segment") == 4, err1[-3000:]
  for slug in ("kmeans_k2", "otsu"):
    for seed in (0, 1):
      assert _table_rows(tmp_path / "pair", slug, seed) == _table_rows(tmp_path / "single",
                                                                       slug, seed)
  timing = {"seconds_per_image", "total_seconds"}
  with open(tmp_path / "single" / "table1.csv") as a, open(tmp_path / "pair" / "table1.csv") as b:
    cells = [[line.split(",") for line in f.read().splitlines()] for f in (a, b)]
  assert [r for r in cells[0] if r[0] not in timing] == [r for r in cells[1] if r[0] not in timing]
