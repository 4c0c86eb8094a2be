"""Distil's train step with its batch sharded over 4 host devices equals the step on one
device (forced host devices must be set before JAX starts: a subprocess, as
tests/test_distributed.py does)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from sgscn_jax.distil import train
from sgscn_jax.distil.config import DistilConfig
assert jax.device_count() == 4, jax.devices()
config = DistilConfig(size=16, width=4, depth=1, steps=3, batch_size=4, log_every=0)
rng = np.random.default_rng(0)
x = rng.random((6, 16, 16, 3)).astype(np.float32)
y = (x[..., 0] > 0.5).astype(np.float32)
w = rng.random((6, 16, 16)).astype(np.float32)
mean, std = train.channel_statistics(x)
four = train.default_mesh()
one = Mesh(np.array(jax.devices()[:1]), ("batch",))
p4, l4 = train.train(x, y, w, mean, std, config, jax.random.key(0), mesh=four)
p1, l1 = train.train(x, y, w, mean, std, config, jax.random.key(0), mesh=one)
batch = train.put(x[:4], NamedSharding(four, PartitionSpec("batch")))
shards = sorted(s.data.shape[0] for s in batch.addressable_shards)
try:
  train.train(x, y, w, mean, std, config.__class__(**{**config.__dict__, "batch_size": 6}),
              jax.random.key(0), mesh=four)
  error = ""
except ValueError as e:
  error = str(e)
flat = lambda p: np.concatenate([np.ravel(a) for a in jax.tree.leaves(p)])
np.savez(sys.argv[1], p4=flat(p4), p1=flat(p1), l4=l4, l1=l1, shards=shards, error=np.array(error))
"""


def test_the_sharded_step_equals_the_single_device_step(tmp_path):
  out = tmp_path / "distil.npz"
  env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=4")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  r = np.load(out)
  assert list(r["shards"]) == [1, 1, 1, 1]            # one example per device
  # the per-device programs sum the gradients in another order: equal to float rounding
  np.testing.assert_allclose(r["l4"], r["l1"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(r["p4"], r["p1"], rtol=1e-4, atol=1e-5)
  assert not np.allclose(r["l4"][0], r["l4"][-1])     # it did train
  assert "cannot be split evenly over 4 devices" in str(r["error"])
