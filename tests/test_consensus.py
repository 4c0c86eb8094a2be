"""Seed consensus: one frame for label maps of several seeds, a vote, an agreement map."""

import numpy as np
from conftest import write_lesion_folder

from sgscn_jax import Config
from sgscn_jax.data.datasets import folder
from sgscn_jax.evaluation.consensus import align, consensus
from sgscn_jax.running import images as image_runs


def _map(seed=0, shape=(12, 16), k=4):
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, k, size=(shape[0] // 4, shape[1] // 4))
  return np.kron(coarse, np.ones((4, 4), int))


def test_identical_maps_give_themselves_with_full_agreement():
  m = _map()
  fused = consensus(np.stack([m, m, m]))
  assert np.all(fused.agreement == 1.0)
  assert np.array_equal(align(fused.labels, m), m)   # the same partition
  assert len(np.unique(fused.labels)) == len(np.unique(m))


def test_label_permutations_do_not_change_the_consensus():
  base = _map(0)
  rng = np.random.default_rng(5)
  maps = np.stack([base] * 3)
  for e in range(3):   # each seed differs from the others at a few pixels
    flip = rng.random(base.shape) < 0.08
    maps[e][flip] = rng.integers(0, 4, size=flip.sum())
  permuted = maps.copy()
  for e, perm in enumerate(([3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1])):
    permuted[e] = np.asarray(perm)[maps[e]]
  a, b = consensus(maps), consensus(permuted)
  np.testing.assert_array_equal(a.agreement, b.agreement)
  assert np.array_equal(align(a.labels, b.labels), b.labels)


def test_agreement_is_the_share_of_seeds_that_vote_for_the_winner():
  m = np.zeros((8, 8), int)
  m[:, 4:] = 1
  other = m.copy()
  other[0, 0] = 1            # one seed disagrees at one pixel
  fused = consensus(np.stack([m, m, other]))
  assert fused.agreement[0, 0] == np.float32(2 / 3) and (fused.agreement == 1).sum() == 63
  assert np.array_equal(align(fused.labels, m), m)   # the majority wins


def test_runs_with_several_seeds_per_image_write_the_agreement(tmp_path):
  cases = write_lesion_folder(tmp_path / "data", n=2)
  config = Config(n_channels=8, iterations=3)
  single = image_runs.run_dataset(cases, folder.load_case, config, image_runs.RunOptions(
      out_dir=str(tmp_path / "one"), batch_size=1, montage_cases=0))
  fused = image_runs.run_dataset(cases, folder.load_case, config, image_runs.RunOptions(
      out_dir=str(tmp_path / "three"), batch_size=1, montage_cases=2, seeds_per_image=3))
  for row in fused.rows:
    assert row["seeds"] == 3 and 1 / 3 <= row["agreement_mean"] <= 1
    assert (tmp_path / "three" / "uncertainty" / f"{row['case_id']}.png").is_file()
  assert not (tmp_path / "one" / "uncertainty").exists()
  import imageio.v3 as iio
  width = iio.imread(tmp_path / "three" / "montage.png").shape[1]
  assert width == 5 * 32 + 4 * 4 + 2 * 4   # five 32-pixel panels: the agreement is the last
  assert all("agreement_mean" not in r for r in single.rows)
