"""JULE keeps tissues apart (issue 45): the issue's synthetic ellipsoid with `jule:k=2`, the
Potts prior of the final labelling against NumPy, patches and labels inside a mask."""

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax import parse_method, registry
from sgscn_jax.jule import method, patches
from sgscn_jax.volume import mrf
from test_volume_tissues import SPACING, best_dice, ellipsoid

# `jule:k=2` with fewer, smaller patches and networks than the default, to keep the test
# short; the default's DSC on the same volume is in docs/JULE.md.
FAST = ("jule:k=2,n_patches=600,channels=16,embed_dim=16,epochs_per_period=2,"
        "final_epochs=2,kmeans_restarts=2,progress=false")


def test_jule_k2_finds_the_ellipsoid():
  v, truth = ellipsoid(0)
  jule = registry.get_method("jule")
  config = parse_method(FAST).config()
  assert config.intensity_weight == 4.0 and config.mrf == 1.0
  seg = jule.segment_one(jax.random.key(0), v, config, spacing=SPACING)
  assert int(seg.n_labels) == 2 and best_dice(seg.labels, truth) > 0.95


def test_mask_puts_patches_and_labels_inside():
  rng = np.random.default_rng(0)
  mask = np.zeros((6, 10, 12), bool)
  mask[1:5, 2:8, 3:9] = True
  centres = patches.sample_centres(rng, mask.shape, 100, 0.5, mask)
  assert len({tuple(c) for c in centres}) == 100 and mask[tuple(centres.T)].all()
  old = patches.sample_centres(np.random.default_rng(1), mask.shape, 50, 0.5)
  same = patches.sample_centres(np.random.default_rng(1), mask.shape, 50, 0.5, None)
  np.testing.assert_array_equal(old, same)
  v, truth = ellipsoid(1)
  box = np.zeros(truth.shape, bool)
  box[3:13, 8:32, 8:32] = True
  config = parse_method(FAST).config()
  seg = method.segment(jax.random.key(1), v, config, spacing=SPACING, mask=box)
  labels = np.asarray(seg.labels)
  assert np.all(labels[~box] == 0) and set(np.unique(labels[box])) == {1, 2}
  assert int(seg.n_labels) == 3


def test_class_energy_and_potts_loss_match_numpy():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((4, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 2, (4, 5))
  energy = mrf.class_energy(f, labels, 2)
  for c in range(2):
    members = f[labels == c]
    mu, var = members.mean(0), np.mean((members - members.mean(0)) ** 2)
    want = (np.sum((f - mu) ** 2, -1) / (2 * var) + 1.5 * np.log(var)) / 3
    np.testing.assert_allclose(energy[..., c], want, rtol=1e-4, atol=1e-5)
  s = rng.standard_normal((4, 5, 6, 3)).astype(np.float32)
  p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
  want = (np.mean(1 - np.sum(p[1:] * p[:-1], -1)) + np.mean(1 - np.sum(p[:, 1:] * p[:, :-1], -1))
          + np.mean(1 - np.sum(p[:, :, 1:] * p[:, :, :-1], -1)))
  np.testing.assert_allclose(float(mrf.potts_loss(jnp.asarray(s))), want, rtol=1e-5)


def test_potts_icm_removes_salt_and_pepper_but_keeps_a_clear_edge():
  rng = np.random.default_rng(0)
  truth = np.zeros((8, 20, 20), np.int64)
  truth[:, :, 10:] = 1
  f = (truth + rng.normal(0, 0.45, truth.shape))[..., None].astype(np.float32)
  noisy = (f[..., 0] > 0.5).astype(np.int64)            # the nearest-mean labels
  errors = {beta: np.mean(mrf.potts_icm(f, noisy, 2, beta, 5) != truth)
            for beta in (0.3, 1.0)}
  assert np.mean(noisy != truth) > 0.1                  # 13.7 % of voxels wrong
  assert errors[0.3] < 0.6 * np.mean(noisy != truth) and errors[1.0] < 0.005
  none = mrf.potts_icm(f, noisy, 2, beta=0.0, iterations=1)
  assert np.mean(none != truth) > 0.1                   # beta 0: the data term alone
  mask = np.ones(truth.shape, bool)
  mask[:, :2] = False
  assert np.all(mrf.potts_icm(f, noisy, 2, 0.3, 2, mask)[~mask] == -1)
