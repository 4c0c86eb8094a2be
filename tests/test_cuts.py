"""CUTS (`sgscn_jax.cuts`): the losses against NumPy, the encoder's crop/whole-image
equality, diffusion condensation on a hand-built cloud, and the data-set method through the
runner (fit once, state in the folder, resume without refitting) and the table script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import registry
from sgscn_jax.cuts import condensation, encoder, losses
from sgscn_jax.cuts import fit as cuts_fit
from sgscn_jax.cuts.config import QUICK, CutsConfig
from sgscn_jax.data.datasets import list_dataset
from sgscn_jax.running import fitting
from sgscn_jax.running import images as image_runs

ROOT = Path(__file__).resolve().parents[1]


def _np_nt_xent(a, p, tau):
  z = np.concatenate([a, p])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  s = len(a)
  sim = np.exp(z @ z.T / tau)
  total = 0.0
  for i in range(2 * s):
    pos = (i + s) % (2 * s)
    neg = sum(sim[i, j] for j in range(2 * s) if j not in (i, pos))
    total += -np.log(sim[i, pos] / (sim[i, pos] + neg))
  return total / (2 * s)


def test_nt_xent_matches_numpy():
  rng = np.random.default_rng(0)
  a, p = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
  got = losses.nt_xent_loss(jnp.asarray(a, jnp.float32), jnp.asarray(p, jnp.float32), 0.1)
  np.testing.assert_allclose(float(got), _np_nt_xent(a, p, 0.1), rtol=1e-4)
  # identical pairs far from the others: the loss is near 0
  e = np.eye(4, 7) * 10
  assert float(losses.nt_xent_loss(jnp.asarray(e), jnp.asarray(e), 0.1)) < 1e-3


def test_reconstruction_loss_weights_and_patch_ssim_match_numpy():
  rng = np.random.default_rng(1)
  a, b = rng.random((3, 5, 5, 2)), rng.random((3, 5, 5, 2))
  np.testing.assert_allclose(float(losses.patch_reconstruction_loss(a, b)),
                             np.mean((a - b) ** 2), rtol=1e-5)
  assert float(losses.cuts_loss(2.0, 4.0, 0.25)) == pytest.approx(0.25 * 2 + 0.75 * 4)
  x, y = a[0], b[0]
  d = x.max() - x.min()
  c1, c2 = (0.01 * d) ** 2, (0.03 * d) ** 2
  cov = np.mean(x * y) - x.mean() * y.mean()
  want = ((2 * x.mean() * y.mean() + c1) * (2 * cov + c2)) / (
      (x.mean() ** 2 + y.mean() ** 2 + c1) * (x.var() + y.var() + c2))
  np.testing.assert_allclose(float(losses.patch_ssim(x, y)), want, rtol=1e-4)
  assert float(losses.patch_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_crop_embedding_equals_whole_image_embedding():
  config = CutsConfig(num_kernels=2)
  image = np.random.default_rng(2).random((20, 24, 3)).astype(np.float32)
  params = jax.jit(encoder.init, static_argnums=(1, 2))(jax.random.key(0), 3, config)
  whole = np.asarray(jax.jit(encoder.embed_image, static_argnums=2)(params, jnp.asarray(image),
                                                                    config))
  assert whole.shape == (20, 24, encoder.latent_dim(config))
  r = config.receptive_radius
  padded = np.pad(image, ((r, r), (r, r), (0, 0)), mode="edge")
  points = ((0, 0), (7, 11), (19, 23))
  crops = np.stack([padded[h:h + 2 * r + 1, w:w + 2 * r + 1] for h, w in points])
  z = np.asarray(jax.jit(encoder.embed_padded, static_argnums=2)(params, jnp.asarray(crops),
                                                                 config))[:, 0, 0]
  for i, (h, w) in enumerate(points):
    np.testing.assert_allclose(z[i], whole[h, w], rtol=1e-4, atol=1e-5)


def test_condensation_two_blobs_merge_into_two_then_one():
  rng = np.random.default_rng(3)
  blob_a = np.array([1.0, 0.0, 0.0]) + 0.03 * rng.normal(size=(40, 3))
  blob_b = np.array([0.0, 1.0, 0.0]) + 0.03 * rng.normal(size=(40, 3))
  x = np.concatenate([blob_a, blob_b])
  c = condensation.condense(x, knn=5, growth=1.3, merge_distance=0.02, max_steps=200)
  assert np.all(np.diff(c.n_clusters) <= 0) and c.n_clusters[-1] == 1
  lv = condensation.levels(c, max_clusters=20)
  two = list(lv.n_clusters).index(2)
  labels = lv.labels[two]
  assert len(set(labels[:40])) == 1 and len(set(labels[40:])) == 1 and labels[0] != labels[40]
  assert lv.n_clusters[condensation.persistent_level(lv)] == 2   # the blobs persist longest
  nearest = condensation.nearest_points(np.array([[1.0, 0.01, 0.0], [0.0, 1.0, 0.02]]), x)
  assert labels[nearest[0]] == labels[0] and labels[nearest[1]] == labels[40]


def test_fit_segment_split_and_resume_reuses_the_fitted_state(tmp_path, monkeypatch):
  method = registry.get_method("cuts")
  assert method.fit is not None and method.kind == "fitted"
  assert registry.get_method("otsu").kind == "host"
  cases, load = list_dataset("demo", None, demo_n=2, demo_size=32, seed=0)
  calls = []
  real_fit = cuts_fit.fit
  monkeypatch.setattr(cuts_fit, "fit", lambda *a, **k: calls.append(1) or real_fit(
      *a, **dict(k, show_progress=False)))
  options = image_runs.RunOptions(out_dir=str(tmp_path / "cuts"), batch_size=1,
                                  method_name="cuts", objects=None)
  first = image_runs.run_dataset(cases, load, QUICK, options, method)
  assert calls == [1] and first.summary["finished"] == 2
  npz, meta = fitting.state_paths(tmp_path / "cuts", "cuts")
  info = json.loads(meta.read_text())
  assert info["images"] == [c.case_id for c in cases] and info["config"]["steps"] == QUICK.steps
  row = json.loads((tmp_path / "cuts" / "cases" / f"{cases[1].case_id}.json").read_text())
  assert "oracle_level.dice" in row and row["oracle_level.dice"] >= row["largest_overlap.dice"]
  labels = (tmp_path / "cuts" / "labels" / f"{cases[1].case_id}.png").read_bytes()
  mtime = npz.stat().st_mtime_ns
  (tmp_path / "cuts" / "cases" / f"{cases[1].case_id}.json").unlink()   # an interrupted run
  again = image_runs.run_dataset(cases, load, QUICK, options, method)
  assert calls == [1] and npz.stat().st_mtime_ns == mtime and again.summary["finished"] == 2
  assert (tmp_path / "cuts" / "labels" / f"{cases[1].case_id}.png").read_bytes() == labels
  # a state fitted with other settings is refused, not reused
  meta.write_text(json.dumps(dict(info, seed=5)))
  (tmp_path / "cuts" / "cases" / f"{cases[1].case_id}.json").unlink()
  with pytest.raises(Exception, match="fitted with other settings"):
    image_runs.run_dataset(cases, load, QUICK, options, method)
  with pytest.raises(ValueError, match="state of a fit"):
    method.segment_one(jax.random.key(0), load(cases[0]).image[:16, :16])


def test_reproduce_tables_runs_cuts_with_its_level_oracles(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.reproduce_tables", "--quick", "--methods=cuts,otsu",
       "--noablation", "--figure_cases=0", f"--out_dir={tmp_path}", "--dataset=demo",
       "--demo_n=2", "--demo_size=32", "--batch_size=1"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "CUTS" in (tmp_path / "table1_object.md").read_text()
  assert "CUTS" in (tmp_path / "table1_oracle_level_object.md").read_text()
  assert (tmp_path / "cuts" / "seed0" / "fitted" / "cuts_state.npz").exists()
  assert (tmp_path / "cuts" / "seed0" / "levels").is_dir()
