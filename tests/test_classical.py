"""Classical baselines (Otsu, Chan-Vese) and DullRazor-style hair removal.

Host-side only (NumPy / SciPy / scikit-image), all on synthetic images: nothing here
reads a data set or ground truth from disk.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from scipy import ndimage  # noqa: E402
from skimage import filters  # noqa: E402

from sgscn_jax.baselines import classical  # noqa: E402
from sgscn_jax.baselines.classical import ChanVeseConfig, OtsuConfig  # noqa: E402
from sgscn_jax.data import hair  # noqa: E402
from sgscn_jax.data.hair import HairConfig  # noqa: E402


def _disc(shape, centre, radius) -> np.ndarray:
  """`shape` bool: pixels (or voxels) within `radius` of `centre`."""
  grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
  return sum((g - c) ** 2 for g, c in zip(grids, centre)) <= radius ** 2


def _dsc(a: np.ndarray, b: np.ndarray) -> float:
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def _smooth_noise(rng, shape, sigma, std) -> np.ndarray:
  """Correlated Gaussian noise: white noise blurred by `sigma`, scaled to std `std`."""
  n = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
  return n / n.std() * std


# ---------------------------------------------------------------- bimodality


def test_bimodality_two_levels_is_one_and_constant_is_zero():
  values = np.array([0.2] * 30 + [0.7] * 70)
  assert classical.bimodality(values) == pytest.approx(1.0, abs=1e-12)
  assert classical.bimodality(np.full(50, 0.4)) == 0.0
  assert classical.bimodality(np.array([])) == 0.0


def test_bimodality_equals_direct_between_over_total_variance():
  rng = np.random.default_rng(0)
  v = np.concatenate([rng.normal(0.3, 0.08, 700), rng.normal(0.65, 0.1, 300)])
  t = filters.threshold_otsu(v)
  lo, hi = v[v <= t], v[v > t]
  w0, w1 = lo.size / v.size, hi.size / v.size
  between = w0 * w1 * (lo.mean() - hi.mean()) ** 2
  total = np.mean((v - v.mean()) ** 2)
  within = w0 * lo.var() + w1 * hi.var()          # sigma_T^2 = sigma_W^2 + sigma_B^2
  eta = classical.bimodality(v)
  assert eta == pytest.approx(between / total, rel=1e-10)
  assert eta == pytest.approx(1.0 - within / total, rel=1e-10)
  assert 0.0 < eta < 1.0
  # Unimodal uniform data: eta of a uniform split at the middle is 3/4.
  u = rng.uniform(size=200_000)
  assert classical.bimodality(u) == pytest.approx(0.75, abs=0.01)


# ---------------------------------------------------------------- channels


def test_candidate_channels_names_order_and_pc1():
  rng = np.random.default_rng(1)
  base = rng.uniform(size=(16, 20))
  image = np.stack([0.2 + 0.5 * base, 0.1 + 0.8 * base, 0.3 + 0.2 * base], axis=-1)
  cands = classical.candidate_channels(image)
  assert list(cands) == ["0", "1", "2", "pc1"]
  np.testing.assert_array_equal(cands["1"], image[..., 1])
  pc1 = cands["pc1"]
  assert pc1.shape == (16, 20) and pc1.min() == 0.0 and pc1.max() == pytest.approx(1.0)
  # All channels rise with `base`: PC1 (loadings summing > 0) is `base` rescaled.
  np.testing.assert_allclose(pc1, (base - base.min()) / (base.max() - base.min()),
                             atol=1e-10)
  # The sign is fixed by the loadings, not by the data's orientation.
  np.testing.assert_allclose(classical.candidate_channels(1.0 - image)["pc1"], 1.0 - pc1,
                             atol=1e-10)
  assert list(classical.candidate_channels(image[..., :1])) == ["0"]


def test_most_bimodal_channel_picks_the_channel_with_the_disc():
  rng = np.random.default_rng(2)
  shape = (64, 80)
  disc = _disc(shape, (30, 42), 14)
  image = rng.uniform(size=shape + (3,))
  image[..., 1] = np.where(disc, 0.2, 0.8) + rng.normal(0, 0.05, shape)
  name, x = classical.most_bimodal_channel(image, sigma=2.0)
  assert name == "1"
  np.testing.assert_allclose(
      x, ndimage.gaussian_filter(image[..., 1].astype(np.float64), 2.0, mode="nearest"))


def test_most_bimodal_channel_ties_go_to_the_first():
  shape = (32, 32)
  d = np.where(_disc(shape, (16, 16), 8), 0.2, 0.8)
  image = np.stack([d, d, d], axis=-1)           # every candidate (pc1 too) has eta = 1
  assert classical.most_bimodal_channel(image, sigma=0.0)[0] == "0"


def test_pc1_is_chosen_when_the_disc_is_only_a_colour_combination():
  rng = np.random.default_rng(0)
  shape = (96, 128)
  disc = _disc(shape, (50, 60), 22)
  # Every channel holds the same weak dark disc (-0.15) under blob noise (std 0.04-0.06)
  # that cancels in the channel sum: n1, n2 - n1, -n2. Only the combination (PC1, the
  # disc's direction (1, 1, 1) having the largest variance) shows the disc cleanly.
  n1, n2 = (_smooth_noise(rng, shape, 4.0, 0.04) for _ in range(2))
  image = np.stack([n1, n2 - n1, -n2], axis=-1) + (0.5 - 0.15 * disc)[..., None]
  etas = {k: classical.bimodality(ndimage.gaussian_filter(v, 2.0, mode="nearest"))
          for k, v in classical.candidate_channels(image).items()}
  assert max(etas, key=etas.get) == "pc1"
  assert etas["pc1"] > max(etas["0"], etas["1"], etas["2"]) + 0.1
  assert classical.most_bimodal_channel(image, sigma=2.0)[0] == "pc1"
  labels = classical.otsu_labels(image, OtsuConfig(sigma=2.0))
  assert _dsc(labels == 0, disc) > 0.95
  for c in "012":
    single = classical.otsu_labels(image, OtsuConfig(sigma=2.0, channel=c))
    assert _dsc(single == 0, disc) < _dsc(labels == 0, disc)


# ---------------------------------------------------------------- otsu


def test_otsu_dark_disc_is_label_zero():
  rng = np.random.default_rng(4)
  shape = (96, 128)
  disc = _disc(shape, (45, 70), 25)
  clean = np.repeat(np.where(disc, 0.25, 0.75)[..., None], 3, axis=-1)
  exact = classical.otsu_labels(clean, OtsuConfig(sigma=0.0))
  assert exact.dtype == np.int32 and exact.shape == shape
  np.testing.assert_array_equal(exact, (~disc).astype(np.int32))
  noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)
  labels = classical.otsu_labels(noisy)
  assert set(np.unique(labels)) == {0, 1}
  assert _dsc(labels == 0, disc) > 0.98
  # A bright disc is label 1.
  assert _dsc(classical.otsu_labels(1.0 - noisy) == 1, disc) > 0.98


def test_otsu_explicit_channel_and_constant_image():
  shape = (20, 24)
  disc = _disc(shape, (10, 12), 6)
  image = np.zeros(shape + (3,))
  image[..., 2] = np.where(disc, 0.9, 0.1)
  labels = classical.otsu_labels(image, OtsuConfig(sigma=0.0, channel="2"))
  np.testing.assert_array_equal(labels, disc.astype(np.int32))
  const = classical.otsu_labels(np.full(shape + (3,), 0.5))
  np.testing.assert_array_equal(const, np.zeros(shape, np.int32))
  with pytest.raises(ValueError, match="channel"):
    classical.otsu_labels(image, OtsuConfig(channel="5"))
  with pytest.raises(ValueError):
    OtsuConfig(channel="red")


def test_otsu_3d_sphere():
  rng = np.random.default_rng(5)
  shape = (24, 32, 32)
  ball = _disc(shape, (12, 15, 17), 8)
  vol = np.where(ball, 0.3, 0.7)[..., None] + rng.normal(0, 0.1, shape + (1,))
  labels = classical.otsu_labels(vol, OtsuConfig(sigma=1.0))
  assert labels.shape == shape and labels.dtype == np.int32
  assert _dsc(labels == 0, ball) > 0.95


# ---------------------------------------------------------------- chan-vese


def test_chan_vese_noisy_disc():
  rng = np.random.default_rng(6)
  shape = (96, 128)
  disc = _disc(shape, (50, 60), 28)
  image = np.where(disc, 0.3, 0.7)[..., None] + rng.normal(0, 0.2, shape + (3,))
  labels = classical.chan_vese_labels(image)
  assert labels.shape == shape and labels.dtype == np.int32
  assert _dsc(labels == 0, disc) > 0.9
  assert _dsc(classical.chan_vese_labels(1.0 - image) == 1, disc) > 0.9


def test_chan_vese_rejects_3d_and_constant_is_zero():
  with pytest.raises(ValueError, match=r"\(8, 16, 16, 1\)"):
    classical.chan_vese_labels(np.zeros((8, 16, 16, 1)))
  np.testing.assert_array_equal(
      classical.chan_vese_labels(np.full((16, 16, 3), 0.5), ChanVeseConfig(max_num_iter=5)),
      np.zeros((16, 16), np.int32))


# ---------------------------------------------------------------- hair


def _thick_segment(shape, p0, p1, half_width) -> np.ndarray:
  """`shape` bool: pixels within `half_width` of the segment p0-p1 (row, col)."""
  rr, cc = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
  p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
  d = p1 - p0
  t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / (d @ d), 0, 1)
  return np.hypot(rr - p0[0] - t * d[0], cc - p0[1] - t * d[1]) <= half_width


def _skin_with_hair(shape=(192, 256)):
  """A smooth skin + soft dark lesion image, and the same with thin dark hairs.

  Returns (clean [H, W, 3], hairy [H, W, 3], hair pixels [H, W], lesion disc [H, W]).
  """
  h, w = shape
  rr, cc = np.mgrid[:h, :w] / max(shape)
  skin = np.stack([0.85 + 0.05 * cc, 0.68 + 0.04 * rr, 0.62 + 0.0 * rr], axis=-1)
  lesion = _disc(shape, (96, 120), 45)
  soft = ndimage.gaussian_filter(lesion.astype(np.float64), 2.0)[..., None]
  clean = skin * (1 - soft) + np.array([0.42, 0.28, 0.24]) * soft
  hairs = np.zeros(shape, bool)
  for p0, p1 in [((5, 10), (180, 70)), ((20, 250), (150, 5)), ((100, 0), (110, 255)),
                 ((0, 200), (190, 230)), ((185, 30), (60, 250))]:
    hairs |= _thick_segment(shape, p0, p1, 1.0)
  hairy = np.where(hairs[..., None], np.array([0.12, 0.09, 0.07]), clean)
  return clean, hairy, hairs, lesion


def test_line_sizes_scale_with_the_long_side():
  assert hair.line_length((192, 256)) == 5
  assert hair.line_length((574, 765)) == 15
  assert hair.along_length(5) == 11 and hair.along_length(15) == 31
  np.testing.assert_array_equal(hair.line_footprint(5, 45.0), np.eye(5, dtype=bool)[::-1])
  np.testing.assert_array_equal(hair.line_footprint(5, 135.0), np.eye(5, dtype=bool))
  horizontal = np.zeros((7, 7), bool)
  horizontal[3] = True
  np.testing.assert_array_equal(hair.line_footprint(7, 0.0), horizontal)
  for angle in np.arange(0, 180, 11.25):                 # L pixels at every angle
    fp = hair.line_footprint(15, angle)
    assert fp.sum() == 15 and fp[7, 7]
    np.testing.assert_array_equal(fp, fp[::-1, ::-1])


def test_black_hat_of_a_thin_line():
  y = np.full((40, 40), 0.8)
  y[:, 20] = 0.3                                        # a vertical dark line, width 1
  bh = hair.directional_black_hats(y, 5, 4)              # 0, 45, 90, 135 degrees
  assert bh.shape == (4, 40, 40)
  np.testing.assert_allclose(bh[0][:, 20], 0.5)          # horizontal line bridges it
  np.testing.assert_allclose(bh[2], 0.0)                 # vertical line stays inside it
  np.testing.assert_allclose(np.delete(bh.max(axis=0), 20, axis=1), 0.0)


def test_hair_mask_finds_thin_dark_lines_and_not_the_lesion():
  clean, hairy, hairs, lesion = _skin_with_hair()
  mask = hair.hair_mask(hairy)
  assert mask.shape == hairs.shape and mask.dtype == bool
  assert np.mean(mask[hairs]) > 0.8                      # recall of the hair pixels
  near_hair = ndimage.binary_dilation(hairs, iterations=3)
  assert np.mean(mask[~near_hair]) < 0.005               # few false positives overall
  inner = ndimage.binary_erosion(lesion, iterations=3)
  assert np.sum(mask & inner & ~near_hair) == 0          # none inside the lesion
  # Without hair the dark lesion is not hair, at most a ring at its border.
  bare = hair.hair_mask(clean)
  border = ndimage.binary_dilation(lesion, iterations=3) & ~inner
  assert np.sum(bare & ~border) == 0
  assert np.sum(bare) < 0.05 * np.sum(border)


def test_hair_mask_ignores_isotropic_dark_dots():
  clean, _, _, _ = _skin_with_hair()
  dotted = clean.copy()
  for centre in [(30, 30), (40, 200), (160, 60), (170, 220), (96, 120)]:
    dotted[_disc(clean.shape[:2], centre, 2)] = 0.1      # globules smaller than L
  assert not hair.hair_mask(dotted).any()


def test_remove_hair_keeps_other_pixels_and_fills_hairs_from_surroundings():
  clean, hairy, hairs, _ = _skin_with_hair()
  mask = hair.hair_mask(hairy)
  out = hair.remove_hair(hairy)
  assert out.shape == hairy.shape and out.dtype == hairy.dtype
  assert out.min() >= 0.0 and out.max() <= 1.0
  np.testing.assert_array_equal(out[~mask], hairy[~mask])
  err = np.abs(out - clean)[hairs]                       # vs the hair-free image
  assert err.mean() < 0.03
  assert np.mean(np.abs(hairy - clean)[hairs]) > 0.3     # it was far before
  # A float32 image stays float32; a uint8 image is read as value / 255.
  assert hair.remove_hair(hairy.astype(np.float32)).dtype == np.float32
  as_uint8 = np.round(hairy * 255).astype(np.uint8)
  np.testing.assert_array_equal(hair.hair_mask(as_uint8), hair.hair_mask(as_uint8 / 255.0))
  assert hair.remove_hair(as_uint8).max() <= 1.0


def test_inpaint_push_pull_constant_and_ramp():
  rng = np.random.default_rng(7)
  mask = rng.uniform(size=(33, 47)) < 0.3
  mask[10:20, 15:30] = True                              # a large hole too
  const = np.full((33, 47, 2), 0.4)
  np.testing.assert_allclose(hair.inpaint_push_pull(const, mask), 0.4, atol=1e-12)
  ramp = np.repeat(np.linspace(0, 1, 47)[None, :, None], 33, axis=0)
  filled = hair.inpaint_push_pull(ramp, mask)
  np.testing.assert_array_equal(filled[~mask], ramp[~mask])
  # Zero-order (local means): one-sided near a hole's edge, so a ramp of slope 1/46 per
  # pixel is matched within ~2 pixels' worth of slope, with no drift from the up-sampling.
  slope = 1.0 / 46
  assert np.abs(filled - ramp)[mask].max() < 3 * slope
  assert np.abs(filled - ramp)[mask].mean() < 0.5 * slope
  with pytest.raises(ValueError):
    hair.inpaint_push_pull(const, np.ones((33, 47), bool))


def test_hair_config_validation_and_no_hair_is_identity():
  with pytest.raises(ValueError):
    HairConfig(line_fraction=0.0)
  with pytest.raises(ValueError):
    HairConfig(min_weight=0.0)
  flat = np.full((64, 64, 3), 0.6)
  assert not hair.hair_mask(flat).any()
  np.testing.assert_array_equal(hair.remove_hair(flat), flat)
