"""Distil (`sgscn_jax.distil`): the losses against NumPy, the augmentations keep image,
target and weight aligned, the student corrects a teacher that is wrong on a minority of a
synthetic data set, the teacher's targets are kept and reused, the fitted state round-trips
through the run folder's format. The sharded step on several host devices:
tests/test_distil_sharded.py."""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import registry
from sgscn_jax.distil import augment, losses, network, teacher, train
from sgscn_jax.distil import method as distil
from sgscn_jax.distil.config import FIT_FIELDS, DistilConfig
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import fitting

# One small configuration for every test that trains (one compiled step per process).
SMALL = DistilConfig(teacher="distil_test_teacher", size=32, width=8, depth=2, steps=120,
                     batch_size=4, learning_rate=3e-3, crop_scale=0.7, tta="flips",
                     log_every=0)


# ----------------------------------------------------------------------- a synthetic data set

def disc_image(seed: int, side: int = 32):
  """A dark disc on a bright textured background, `([side, side, 3] in [0, 1], mask)`."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:side, :side] + 0.5
  cy, cx = rng.uniform(0.35, 0.65, 2) * side
  mask = np.hypot(yy - cy, xx - cx) < rng.uniform(0.18, 0.28) * side
  stripes = 0.08 * np.sin(xx * rng.uniform(0.5, 1.2) + rng.uniform(0, 6))[..., None]
  background = np.array([0.85, 0.75, 0.7]) + stripes + rng.normal(0, 0.04, (side, side, 3))
  disc = np.array([0.35, 0.25, 0.2]) + rng.normal(0, 0.04, (side, side, 3))
  image = np.where(mask[..., None], disc, background)
  return np.clip(image, 0, 1).astype(np.float32), mask


def digest(image) -> str:
  return hashlib.sha1(np.ascontiguousarray(image, np.float32)).hexdigest()


@dataclasses.dataclass(frozen=True)
class FakeTeacherConfig:
  wrong: tuple = ()   # digests of the images the teacher gets wrong (the background)


CALLS = []


def fake_teacher(image, config):
  """Otsu-like on the mean channel, except on the `wrong` images: one label (no object)."""
  CALLS.append(digest(image))
  if digest(image) in config.wrong:
    return np.zeros(image.shape[:2], np.int32)
  grey = image.mean(-1)
  return (grey > 0.5 * (grey.min() + grey.max())).astype(np.int32)


def register_teacher(wrong=()):
  config = FakeTeacherConfig(tuple(wrong))
  registry.register_method(registry.Method(
      name="distil_test_teacher", title="fake teacher", core=fake_teacher,
      default_config=config, quick_config=config, host=True), overwrite=True)


def dsc(a, b) -> float:
  a, b = np.asarray(a, bool), np.asarray(b, bool)
  return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


# ----------------------------------------------------------------------------------- config

def test_config_is_hashable_validated_and_names_its_fit_fields():
  assert hash(DistilConfig()) == hash(DistilConfig())
  assert set(DistilConfig().fit_settings()) == set(FIT_FIELDS)
  assert "threshold" not in FIT_FIELDS and "tta" not in FIT_FIELDS and "steps" in FIT_FIELDS
  for bad in (dict(loss="l2"), dict(tta="all"), dict(size=100), dict(crop_scale=0.0),
              dict(threshold=1.0), dict(steps=0)):
    with pytest.raises(ValueError):
      DistilConfig(**bad)
  params = network.init(jax.random.key(0), 3, 16, 4)
  assert 1_000_000 < network.parameter_count(params) < 3_000_000   # "a few million at most"


# ----------------------------------------------------------------------------------- losses

def test_weighted_losses_match_numpy():
  rng = np.random.default_rng(0)
  z = rng.normal(0, 2, (3, 5, 4)).astype(np.float32)
  y = (rng.random((3, 5, 4)) > 0.5).astype(np.float32)
  y[0, 0, 0] = 0.3                                     # a soft target
  share = rng.choice([0, 1 / 3, 2 / 3, 1], (3, 5, 4)).astype(np.float32)
  w = np.abs(2 * share - 1)
  np.testing.assert_allclose(np.asarray(losses.confidence_weight(share)), w, atol=1e-7)
  p = 1 / (1 + np.exp(-z.astype(np.float64)))
  ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  want_ce = (w * ce).sum() / w.sum()
  want_dice = np.mean([1 - (2 * (w[b] * p[b] * y[b]).sum() + 1) / ((w[b] * (p[b] + y[b])).sum() + 1)
                       for b in range(3)])
  got = losses.distil_loss(jnp.asarray(z), jnp.asarray(y), jnp.asarray(w), "ce+dice")
  np.testing.assert_allclose([float(g) for g in got], [want_ce + want_dice, want_ce, want_dice],
                             rtol=1e-5)
  assert float(losses.distil_loss(z, y, w, "ce")[0]) == pytest.approx(want_ce, rel=1e-5)
  assert float(losses.distil_loss(z, y, w, "dice")[0]) == pytest.approx(want_dice, rel=1e-5)
  # a pixel of weight 0 does not count, whatever its loss
  z2 = z.copy()
  z2[w == 0] = 50.0
  np.testing.assert_allclose(float(losses.weighted_cross_entropy(z2, y, w)), want_ce, rtol=1e-5)


# ---------------------------------------------------------------------------- augmentations

def _dihedral(x):
  out = []
  for flip in (False, True):
    f = x[::-1] if flip else x
    out += [np.rot90(f, k) for k in range(4)]
  return out


def test_augmentations_move_image_target_and_weight_together():
  rng = np.random.default_rng(1)
  side = 16
  image = rng.random((side, side, 3)).astype(np.float32)
  target = (image[..., 0] > 0.5).astype(np.float32)    # derived from the image
  weight = image[..., 1]
  run = jax.jit(augment.augment, static_argnums=4)
  geo = dataclasses.replace(SMALL, brightness=0.0, contrast=0.0, hue=0.0)
  seen = set()
  for i in range(12):
    key = jax.random.key(i)
    x, y, w = (np.asarray(a) for a in run(key, image, target, weight, geo))
    # the same coordinates for every channel: target and weight are the image's channels moved
    d = augment.draws(key)[:augment.GEOMETRIC_DRAWS]
    t_of_x = np.asarray(augment.geometric(d, target[..., None], geo))[..., 0]
    np.testing.assert_allclose(y, t_of_x, atol=1e-5)
    np.testing.assert_allclose(w, x[..., 1], atol=1e-5)
    # colour jitter moves nothing: the full augmentation's target is the geometric one
    xf, yf, wf = (np.asarray(a) for a in run(key, image, target, weight, SMALL))
    np.testing.assert_array_equal(yf, y)
    np.testing.assert_array_equal(wf, w)
    assert not np.allclose(xf, x)
    seen.add(hashlib.sha1(y.tobytes()).hexdigest())
  assert len(seen) > 8                                   # the transforms do differ
  # no crop: every draw is one of the 8 flips/turns, an exact permutation of the pixels
  turns = dataclasses.replace(geo, crop_scale=1.0)
  stack = np.concatenate([image, target[..., None], weight[..., None]], -1)
  variants = _dihedral(stack)
  hits = set()
  for i in range(24):
    x, y, w = (np.asarray(a) for a in run(jax.random.key(i), image, target, weight, turns))
    got = np.concatenate([x, y[..., None], w[..., None]], -1)
    match = [j for j, v in enumerate(variants) if np.allclose(got, v, atol=1e-6)]
    assert match, f"draw {i} is not a flip or a quarter turn"
    hits.add(match[0])
  assert len(hits) >= 6
  # every switch off: the identity
  off = dataclasses.replace(SMALL, augment=False)
  x, y, w = (np.asarray(a) for a in run(jax.random.key(3), image, target, weight, off))
  np.testing.assert_allclose(x, image, atol=1e-6)
  np.testing.assert_allclose(y, target, atol=1e-6)


def test_hue_rotation_keeps_grey_and_is_a_rotation():
  r = np.asarray(augment.hue_rotation(jnp.float32(0.7)))
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
  np.testing.assert_allclose(r @ np.ones(3), np.ones(3), atol=1e-6)


def test_group_norm_student_treats_each_image_alone():
  params = network.init(jax.random.key(0), 3, 4, 2)
  again = network.init(jax.random.key(0), 3, 4, 2)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)                              # the same key, the same
  x = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
  apply = jax.jit(network.apply, static_argnums=(2, 3))
  both = apply(params, x, 4, 2)
  assert both.shape == (3, 16, 16)
  np.testing.assert_allclose(np.asarray(apply(params, x[1:2], 4, 2))[0], np.asarray(both)[1],
                             atol=1e-5)


# ----------------------------------------------------------------------------- the student

@pytest.fixture(scope="module")
def data_set():
  pairs = [disc_image(100 + i) for i in range(12)]
  images = [p[0] for p in pairs]
  masks = [p[1] for p in pairs]
  wrong = [0, 5, 9]
  register_teacher([digest(images[i]) for i in wrong])
  return images, masks, wrong


@pytest.fixture(scope="module")
def fitted(data_set, tmp_path_factory):
  images, _, _ = data_set
  out = tmp_path_factory.mktemp("teacher")
  ids = [f"case{i}" for i in range(len(images))]
  context = registry.FitContext(tuple(ids), ObjectConfig(polarity="dark"), out)
  CALLS.clear()
  state = distil.fit(images, SMALL, jax.random.key(0), context=context)
  return state, context, len(CALLS)


def test_the_student_corrects_a_teacher_wrong_on_a_minority(data_set, fitted):
  images, masks, wrong = data_set
  state, context, _ = fitted
  targets = teacher.teacher_targets(images, teacher.resolve_teacher(SMALL.teacher),
                                    context.objects, jax.random.key(1), ids=context.ids)
  teacher_dsc = [dsc(t.mask, m) for t, m in zip(targets, masks)]
  assert all(teacher_dsc[i] == 0 for i in wrong)                 # the teacher's misses
  assert np.mean([d for i, d in enumerate(teacher_dsc) if i not in wrong]) > 0.9
  result = registry.get_method("distil").segment_batch(None, np.stack(images), SMALL,
                                                       state=state)
  assert result.labels.shape == (12, 32, 32) and result.labels.dtype == np.int32
  assert result.probability.shape == (12, 32, 32)
  np.testing.assert_array_equal(result.labels, result.labels.astype(bool))
  student = [dsc(l, m) for l, m in zip(result.labels, masks)]
  assert min(student[i] for i in wrong) > 0.8, student            # the student finds them
  assert np.mean(student) > 0.85, student
  assert np.all(state["loss"][-10:, 0] < state["loss"][:10, 0].mean())
  assert state["loss"].shape == (SMALL.steps, 3)


def test_teacher_targets_are_kept_and_reused(data_set, fitted):
  images, _, _ = data_set
  state, context, first_calls = fitted
  assert first_calls == 12
  chosen = teacher.resolve_teacher(SMALL.teacher)
  folder = context.out_dir / distil.TEACHER_DIR
  kept = sorted((folder / chosen.slug).glob("*.npz"))
  assert [p.stem for p in kept] == sorted(context.ids)
  CALLS.clear()
  again = teacher.teacher_targets(images, chosen, context.objects, jax.random.fold_in(
      jax.random.key(0), 1), ids=context.ids, out_dir=folder)
  assert CALLS == []                                                # all reused
  # another object prior: every target is made again
  other = teacher.teacher_targets(images[:2], chosen, ObjectConfig(polarity="bright"),
                                  jax.random.fold_in(jax.random.key(0), 1),
                                  ids=context.ids[:2], out_dir=folder)
  assert len(CALLS) == 2
  assert not np.array_equal(other[1].mask, again[1].mask)


def test_a_vote_teacher_gives_a_share_map():
  image, _ = disc_image(7)
  chosen = teacher.resolve_teacher("vote:otsu+kmeans:2+otsu_blue", quick=True)
  assert chosen.slug == "vote_otsu+kmeans_k2+otsu_blue"
  (target,) = teacher.teacher_targets([image], chosen, ObjectConfig(polarity="dark"),
                                      jax.random.key(0), ids=["a"], seeds=2)
  sixths = target.share * 6                      # 3 members x 2 seeds
  np.testing.assert_allclose(sixths, np.round(sixths), atol=1e-5)
  np.testing.assert_array_equal(target.mask[target.share > 0.5], True)
  np.testing.assert_array_equal(target.mask[target.share < 0.5], False)
  with pytest.raises(ValueError):
    teacher.resolve_teacher("distil")
  with pytest.raises(ValueError):
    teacher.resolve_teacher("otsu:3")


def test_the_state_round_trips_and_inference_settings_do_not_refit(data_set, fitted, tmp_path):
  images, _, _ = data_set
  state, _, _ = fitted
  method = registry.get_method("distil")
  assert method.fit is not None and method.kind == "fitted"
  path = tmp_path / "state.npz"
  fitting.save_state(path, state)
  loaded = fitting.load_state(path)
  a = method.segment_batch(None, np.stack(images), SMALL, state=state)
  b = method.segment_batch(None, np.stack(images), SMALL, state=loaded)
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_allclose(a.probability, b.probability, atol=1e-6)
  other = dataclasses.replace(SMALL, tta="none", threshold=0.3)
  assert SMALL.fit_settings() == other.fit_settings()
  # one image of another shape: the probability comes back at the image's own shape
  wide = method.segment_one(None, np.concatenate([images[0], images[1]], 1), SMALL, state=state)
  assert wide.labels.shape == wide.probability.shape == (32, 64)
  with pytest.raises(distil.StateMissing):
    method.segment_batch(None, np.stack(images[:1]), SMALL)


def test_the_jitted_step_does_not_retrace(data_set, fitted):
  step = train.train_step(SMALL, train.default_mesh())
  before = step._cache_size()
  images, _, _ = data_set
  x = np.stack(images)
  y = np.ones(x.shape[:3], np.float32)
  train.train(x, y, y, np.zeros(3, np.float32), np.ones(3, np.float32),
              dataclasses.replace(SMALL), jax.random.key(5))
  assert step._cache_size() == before == 1


def test_clean_keeps_the_largest_piece_and_fills_holes():
  p = np.zeros((12, 12), np.float32)
  p[1:7, 1:7] = 0.9
  p[3, 3] = 0.1                      # a hole
  p[9:11, 9:11] = 0.8                # a smaller piece
  mask = distil.clean(p, SMALL)
  assert mask[3, 3] and not mask[9:11, 9:11].any() and mask.sum() == 36
  both = distil.clean(p, dataclasses.replace(SMALL, keep_pieces=0, fill_holes=False))
  assert not both[3, 3] and both[9:11, 9:11].all()


def test_a_second_round_learns_from_the_first_students_answers(data_set, fitted):
  images, masks, wrong = data_set
  config = dataclasses.replace(SMALL, rounds=2, confidence=False)   # the same compiled step
  state = distil.fit(images, config, jax.random.key(0),
                     context=registry.FitContext(tuple(f"case{i}" for i in range(12)),
                                                 ObjectConfig(polarity="dark")))
  assert state["loss"].shape == (2 * SMALL.steps, 3)
  result = registry.get_method("distil").segment_batch(None, np.stack(images), config,
                                                       state=state)
  assert min(dsc(result.labels[i], masks[i]) for i in wrong) > 0.8
