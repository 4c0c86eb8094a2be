"""Tests of the built-in synthetic lesion images."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sgscn_jax.data import synthetic
from sgscn_jax.data.datasets import demo


def _two_means_dsc(image: np.ndarray, mask: np.ndarray) -> float:
  """DSC of the largest-overlap cluster of a plain 2-means on pixel colours.

  Centres start at the darkest and the brightest pixel (by channel sum), so the result
  is deterministic; 25 Lloyd iterations.
  """
  x = image.reshape(-1, 3).astype(np.float64)
  lum = x.sum(1)
  centres = np.stack([x[np.argmin(lum)], x[np.argmax(lum)]])
  for _ in range(25):
    assign = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    centres = np.stack([x[assign == j].mean(0) if np.any(assign == j) else centres[j]
                        for j in range(2)])
  assign = assign.reshape(mask.shape)
  overlaps = [np.sum((assign == j) & mask) for j in range(2)]
  pred = assign == int(np.argmax(overlaps))
  return 2.0 * np.sum(pred & mask) / (pred.sum() + mask.sum())


def test_lesion_image_types_and_range():
  image, mask = synthetic.lesion_image(0, (64, 96))
  assert image.shape == (64, 96, 3) and image.dtype == np.float32
  assert mask.shape == (64, 96) and mask.dtype == bool
  assert image.min() >= 0.0 and image.max() <= 1.0


def _demo(n=4, shape=(128, 128), seed=0):
  """The demo data set's cases, decoded: `[(case_id, image, mask)]`."""
  records = [demo.load_case(c) for c in demo.list_cases(None, n=n, shape=shape, seed=seed)]
  return [(r.case_id, r.image, r.mask) for r in records]


def test_same_seed_gives_same_bytes():
  a_img, a_mask = synthetic.lesion_image(11, hairs=3)
  b_img, b_mask = synthetic.lesion_image(11, hairs=3)
  assert a_img.tobytes() == b_img.tobytes()
  assert a_mask.tobytes() == b_mask.tobytes()
  first = _demo(3, (48, 48), seed=5)
  second = _demo(3, (48, 48), seed=5)
  for (ia, xa, ma), (ib, xb, mb) in zip(first, second):
    assert ia == ib and xa.tobytes() == xb.tobytes() and ma.tobytes() == mb.tobytes()


def test_different_seeds_differ():
  a_img, a_mask = synthetic.lesion_image(1)
  b_img, b_mask = synthetic.lesion_image(2)
  assert np.abs(a_img - b_img).mean() > 0.01
  assert np.any(a_mask != b_mask)


def test_demo_case_is_the_lesion_of_its_seed():
  cases = _demo(3, (40, 40), seed=9)
  assert [c[0] for c in cases] == ["synth9_000", "synth9_001", "synth9_002"]
  image, mask = synthetic.lesion_image((9, 2), (40, 40))
  np.testing.assert_array_equal(cases[2][1], image)
  np.testing.assert_array_equal(cases[2][2], mask)
  # Asking for more cases does not change the earlier ones.
  more = _demo(4, (40, 40), seed=9)
  np.testing.assert_array_equal(more[1][1], cases[1][1])


@pytest.mark.parametrize("seed", range(8))
def test_mask_is_a_lesion_inside_the_image(seed):
  _, mask = synthetic.lesion_image(seed)
  assert 0.03 < mask.mean() < 0.5
  border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
  assert border.mean() < 0.25
  # One connected piece, roughly: its bounding box is not much larger than the blob.
  rows, cols = np.nonzero(mask)
  box = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
  assert mask.sum() / box > 0.5


def test_lesion_is_darker_than_skin():
  for _, image, mask in _demo(6):
    assert image[mask].mean() < image[~mask].mean() - 0.15


def test_colour_two_means_is_good_but_not_perfect():
  scores = [_two_means_dsc(image, mask) for _, image, mask in _demo(6)]
  assert all(0.6 < s < 0.99 for s in scores), scores
  assert 0.75 < np.mean(scores) < 0.97, scores


def test_two_region_image_is_trivially_separable():
  image, mask = synthetic.two_region_image((32, 32), seed=3)
  assert image.shape == (32, 32, 3) and image.dtype == np.float32
  assert 0.15 < mask.mean() < 0.45
  assert _two_means_dsc(image, mask) == 1.0
  again, _ = synthetic.two_region_image((32, 32), seed=3)
  assert image.tobytes() == again.tobytes()


def test_hairs_change_only_the_hair_pixels():
  plain, mask = synthetic.lesion_image(4, hairs=0)
  hairy, hairy_mask = synthetic.lesion_image(4, hairs=4)
  np.testing.assert_array_equal(mask, hairy_mask)
  changed = np.any(plain != hairy, axis=-1)
  assert 0.005 < changed.mean() < 0.3
  # Hairs are dark.
  assert hairy[changed].mean() < plain[changed].mean()


def test_fast_enough():
  synthetic.lesion_image(0, hairs=3)  # Warm up.
  best = min(_time(lambda: synthetic.lesion_image(1, hairs=3)) for _ in range(3))
  assert best < 0.1


def _time(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def test_too_small_shapes_are_refused():
  with pytest.raises(ValueError):
    synthetic.lesion_image(0, (8, 64))
  with pytest.raises(ValueError):
    synthetic.two_region_image((4, 4))
