"""Seed consensus: one frame for label maps of several seeds, a vote, an agreement map."""

import dataclasses

import numpy as np
from conftest import write_lesion_folder

from sgscn_jax import Config
from sgscn_jax.data.datasets import folder
from sgscn_jax.evaluation.consensus import align, consensus, vote_objects
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


def test_object_vote_is_the_majority_and_ties_go_to_the_tie_break():
  a = np.zeros((6, 6), bool)
  a[1:5, 1:5] = True
  b = a.copy()
  b[1, 1] = False             # one of three seeds drops a pixel: the majority keeps it
  c = a.copy()
  c[0, 0] = True              # one of three seeds adds a pixel: the majority drops it
  vote = vote_objects(np.stack([a, b, c]))
  assert np.array_equal(vote.mask, a)
  assert vote.share[1, 1] == np.float32(2 / 3) and vote.share[0, 0] == np.float32(1 / 3)
  np.testing.assert_allclose(vote.agreement[[1, 0, 3], [1, 0, 3]], [2 / 3, 2 / 3, 1])
  # Four seeds, two and two at the pixels where a and c differ: the tie-break decides.
  four = np.stack([a, a, c, c])
  assert not vote_objects(four).mask[0, 0] and vote_objects(four).share[0, 0] == 0.5
  assert vote_objects(four, tie=c).mask[0, 0]
  assert np.array_equal(vote_objects(four, tie=c).mask, c)
  assert np.array_equal(vote_objects(np.stack([a] * 4)).mask, a)   # identical: itself
  assert np.all(vote_objects(np.stack([a] * 4)).agreement == 1)


def test_object_vote_matches_a_numpy_count_on_random_masks():
  rng = np.random.default_rng(3)
  masks = rng.random((5, 9, 7)) < 0.4
  vote = vote_objects(masks)
  for p in np.ndindex(9, 7):
    n = sum(bool(m[p]) for m in masks)
    assert vote.mask[p] == (n >= 3) and np.isclose(vote.share[p], n / 5)


def test_runs_with_objects_and_several_seeds_vote_the_seeds_objects(tmp_path):
  from sgscn_jax.evaluation.objects import ObjectConfig
  from sgscn_jax.running import scoring
  import imageio.v3 as iio
  cases = write_lesion_folder(tmp_path / "data", n=2)
  config = Config(n_channels=8, iterations=3)
  options = image_runs.RunOptions(out_dir=str(tmp_path / "e3"), batch_size=1, montage_cases=1,
                                  seeds_per_image=3, objects=ObjectConfig(polarity="dark"))
  result = image_runs.run_dataset(cases, folder.load_case, config, options)
  out = tmp_path / "e3"
  for case, row in zip(cases, sorted(result.rows, key=lambda r: r["case_id"])):
    record = folder.load_case(case)
    members = [iio.imread(out / "seed_labels" / f"{case.case_id}_seed{e}.png") for e in range(3)]
    assert not (out / "seed_labels" / f"{case.case_id}_seed3.png").exists()
    # Each seed's object found again from its saved map, voted by hand.
    objs = [scoring.find_object(np.asarray(m, np.int64), record, options.objects).mask
            for m in members]
    expected = np.sum(objs, axis=0) >= 2
    saved = iio.imread(out / "objects" / f"{case.case_id}.png") > 0
    assert np.array_equal(saved, expected)
    share = iio.imread(out / "object_share" / f"{case.case_id}.png")
    np.testing.assert_array_equal(share, np.round(255 * np.sum(objs, axis=0) / 3).astype(np.uint8))
    assert row["object_reason"].startswith("vote of 3 seeds' objects")
    assert 0.5 <= row["object_agreement_mean"] <= 1
    assert all(m.shape == record.image.shape[:2] for m in members)   # image resolution
  # A resumed run with other object settings votes again from the saved seed maps.
  redo = image_runs.run_dataset(cases, folder.load_case, config, dataclasses.replace(
      options, objects=ObjectConfig(polarity="dark", opening_radius=0)))
  assert all(r["object_reason"].startswith("vote of 3") for r in redo.rows)
  assert all(r["object_config"] != row["object_config"] for r in redo.rows)
