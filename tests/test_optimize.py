"""The per-image loop and its vmapped batch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgscn_jax import (Config, image_keys, python_loop, register_loss_term, segment_batch,
                       segment_image, segment_one)
from sgscn_jax.core import batching as _batching
from sgscn_jax.core.loop import STOP_REASONS

SMALL = Config(n_channels=16, iterations=6, early_stop=False)
EARLY = Config(n_channels=16, iterations=40, min_labels=3, early_stop=True)


def _image(seed, shape=(20, 24, 3)):
  """Two colour regions plus a little noise."""
  rng = np.random.default_rng(seed)
  img = np.full(shape, 0.2, np.float32)
  img[: shape[0] // 2] = 0.8
  return np.clip(img + rng.normal(scale=0.05, size=shape), 0, 1).astype(np.float32)


def test_result_shapes_and_renumbered_labels():
  r = segment_one(jax.random.key(0), _image(0), SMALL)
  assert r.labels.shape == (20, 24) and r.labels.dtype == jnp.int32
  k = int(r.n_labels)
  assert sorted(np.unique(r.labels)) == list(range(k))
  assert r.history.total.shape == (6,) and r.history.n_labels.shape == (6,)
  assert set(r.history.terms) == {"cross_entropy", "sparse_spatial", "context_consistency"}
  assert int(r.iterations) == 6 and bool(r.finite)


def test_same_seed_same_labels_bit_for_bit():
  a = segment_one(jax.random.key(3), _image(1), SMALL)
  b = segment_one(jax.random.key(3), _image(1), SMALL)
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.history.total, b.history.total)
  c = segment_one(jax.random.key(4), _image(1), SMALL)
  assert not np.array_equal(a.history.total, c.history.total)


def test_raw_uint32_keys_are_accepted():
  a = segment_one(jax.random.key_data(jax.random.key(3)), _image(1), SMALL)
  b = segment_one(jax.random.key(3), _image(1), SMALL)
  np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("batching,chunk_size", [("vmap", None), ("vmap", 2), ("sequential", None)])
def test_batch_equals_single_image_runs(batching, chunk_size):
  """Whole-batch vmap, chunked vmap (2 + 1 images, lax.map over vmapped chunks) and
  sequential batches all equal one-at-a-time runs."""
  images = np.stack([_image(i) for i in range(3)])
  keys = image_keys(7, 3)
  batch = segment_batch(keys, images, SMALL, batching=batching, chunk_size=chunk_size)
  for i in range(3):
    one = segment_one(keys[i], images[i], SMALL)
    np.testing.assert_allclose(batch.history.total[i], one.history.total, rtol=1e-4)
    assert np.mean(np.asarray(batch.labels[i]) == np.asarray(one.labels)) > 0.99
    assert int(batch.iterations[i]) == int(one.iterations)


@pytest.mark.parametrize("batching", ["vmap", "sequential"])
def test_early_stopping_freezes_each_lane_independently(batching):
  """Two lanes that stop at different iterations: each stops exactly when its own rule
  fires (the first pre-update label count <= min_labels), as in its single run."""
  cfg = EARLY
  noise = np.random.default_rng(5).uniform(size=(20, 24, 3)).astype(np.float32)
  images = np.stack([_image(0), noise])
  keys = image_keys(0, 2)
  batch = segment_batch(keys, images, cfg, batching=batching)
  stops = []
  for i in range(2):
    one = segment_one(keys[i], images[i], cfg)
    hist = np.asarray(one.history.n_labels)
    fired = np.flatnonzero((hist >= 0) & (hist <= cfg.min_labels))
    expected = int(fired[0]) + 1 if fired.size else cfg.iterations
    assert int(one.iterations) == expected == int(batch.iterations[i])
    assert np.all(hist[expected:] == -1)
    assert np.all(np.isnan(np.asarray(one.history.total)[expected:]))
    stops.append(expected)
  assert stops[0] < cfg.iterations and stops[0] != stops[1], stops


def test_python_loop_equals_the_compiled_loop():
  """`loop_fn=python_loop` runs the same steps eagerly, one Python iteration at a time.
  (The configurations and shapes are other tests' too, so the compiled runs come from the
  compilation cache.)"""
  for cfg in (SMALL, EARLY):
    image = jnp.asarray(_image(0))
    compiled = segment_one(jax.random.key(2), image, cfg)
    eager = segment_image(jax.random.key(2), image, cfg, loop_fn=python_loop)
    assert int(eager.iterations) == int(compiled.iterations)
    np.testing.assert_allclose(eager.history.total, compiled.history.total, rtol=1e-4)
    assert np.mean(np.asarray(eager.labels) == np.asarray(compiled.labels)) > 0.98


def test_second_call_does_not_retrace():
  img = _image(0)
  segment_one(jax.random.key(0), img, SMALL)
  size = _batching.SGSCN.one._cache_size()
  segment_one(jax.random.key(1), img * 0.5, SMALL)
  segment_one(jax.random.key(2), img, dataclasses.replace(SMALL))  # equal, another object
  assert _batching.SGSCN.one._cache_size() == size
  images = np.stack([_image(i) for i in range(3)])
  for batching, fn in (("vmap", _batching.SGSCN.vmap),
                       ("sequential", _batching.SGSCN.sequential)):
    segment_batch(image_keys(0, 3), images, SMALL, batching=batching)
    size = fn._cache_size()
    segment_batch(image_keys(1, 3), images * 0.3, SMALL, batching=batching)
    assert fn._cache_size() == size


def test_a_few_iterations_reduce_loss_and_labels():
  cfg = Config(n_channels=32, iterations=15, early_stop=False)
  r = segment_one(jax.random.key(0), _image(2, (32, 32, 3)), cfg)
  total = np.asarray(r.history.total)
  labels = np.asarray(r.history.n_labels)
  assert total[-1] < total[0] and labels[-1] < labels[0]


def test_a_new_loss_term_is_one_function_and_one_config_line():
  calls = []

  def brightness_contrast(response, image, coordinates):
    """Toy term: make channel 0 follow the image's brightness."""
    calls.append(response.shape)
    return jnp.mean(jnp.square(response[..., 0] - image.mean(-1)))

  register_loss_term("toy_brightness", brightness_contrast, overwrite=True)
  cfg = SMALL.with_weights(toy_brightness=3.0)
  r = segment_one(jax.random.key(0), _image(0), cfg)
  assert calls, "the new term was traced into the loop"
  assert "toy_brightness" in r.history.terms
  terms = r.history.terms
  np.testing.assert_allclose(
      r.history.total,
      terms["cross_entropy"] + 5 * terms["sparse_spatial"] + terms["context_consistency"]
      + 3 * terms["toy_brightness"], rtol=1e-5)
  base = segment_one(jax.random.key(0), _image(0), SMALL)
  assert not np.allclose(base.history.total, r.history.total)


def test_zero_weight_terms_are_not_computed():
  cfg = SMALL.with_weights(context_consistency=0.0)
  r = segment_one(jax.random.key(0), _image(0), cfg)
  assert set(r.history.terms) == {"cross_entropy", "sparse_spatial"}


def test_non_finite_loss_stops_that_image_only():
  def explodes_on_bright_images(response, image, coordinates):
    return jnp.where(image.max() > 0.99, jnp.nan, 0.0) + 0.0 * response.mean()

  register_loss_term("explodes_on_bright", explodes_on_bright_images, overwrite=True)
  cfg = SMALL.with_weights(explodes_on_bright=1.0)
  images = np.stack([_image(0) * 0.5, np.ones((20, 24, 3), np.float32)])
  keys = image_keys(0, 2)
  batch = segment_batch(keys, images, cfg, batching="vmap")
  assert bool(batch.finite[0]) and not bool(batch.finite[1])
  assert int(batch.iterations[0]) == 6 and int(batch.iterations[1]) == 0
  assert np.isnan(batch.history.total[1, 0]) and np.all(batch.history.n_labels[1, 1:] == -1)
  good = segment_one(keys[0], images[0], cfg)
  np.testing.assert_allclose(batch.history.total[0], good.history.total, rtol=1e-4)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((8, 8)), "trailing channel axis"),
    (np.zeros((1, 8, 3)), "at least 2 pixels"),
    (np.zeros((8, 8, 0)), "unsupported channel count 0"),
    (np.zeros((8, 8, 20)), "unsupported channel count 20"),
    (np.zeros((2, 2, 2, 2, 3)), "expected rank 3"),
])
def test_bad_shapes_are_clear_errors(bad, match):
  with pytest.raises(ValueError, match=match):
    segment_one(jax.random.key(0), bad, SMALL)


def test_non_finite_input_is_a_clear_error():
  img = _image(0)
  img[3, 4, 1] = np.nan
  with pytest.raises(ValueError, match=r"non-finite .* first at index \(3, 4, 1\)"):
    segment_one(jax.random.key(0), img, SMALL)
  images = np.stack([_image(0), _image(1)])
  images[1, 0, 0, 0] = np.inf
  with pytest.raises(ValueError, match=r"images\[1\]"):
    segment_batch(image_keys(0, 2), images, SMALL)


def test_volume_runs_through_the_same_code():
  """A volume `[D, H, W, 1]` of two slabs goes through the same loop: the labels separate
  the slabs (each slab mostly one label, different labels)."""
  vol = np.zeros((6, 8, 8, 1), np.float32)
  vol[:, :4] = 1.0
  r = segment_one(jax.random.key(0), vol, Config(n_channels=8, iterations=6, early_stop=False))
  labels = np.asarray(r.labels)
  assert labels.shape == (6, 8, 8)
  top, bottom = np.bincount(labels[:, :4].ravel()), np.bincount(labels[:, 4:].ravel())
  assert top.argmax() != bottom.argmax()
  assert top.max() >= 0.75 * labels[:, :4].size and bottom.max() >= 0.75 * labels[:, 4:].size


def test_real_image_few_iterations_reduce_loss_and_labels(shared_data):
  from PIL import Image
  path = (shared_data / "PH2" / "PH2 Dataset images" / "IMD003" / "IMD003_Dermoscopic_Image"
          / "IMD003.bmp")
  if not path.exists():
    pytest.skip(f"{path} absent")
  img = np.asarray(Image.open(path).convert("RGB").resize((64, 48), Image.BILINEAR),
                   np.float32) / 255
  r = segment_one(jax.random.key(0), img, Config(iterations=8, early_stop=False))
  total = np.asarray(r.history.total)
  labels = np.asarray(r.history.n_labels)
  assert np.all(np.isfinite(total))
  assert total[-1] < total[0]
  assert labels[-1] < labels[0]


def test_auto_chunk_size_follows_the_memory_budget():
  per_image = _batching.image_peak_bytes((20, 24, 3), SMALL)
  # The compiled program's buffers grow with the pixels and the channels.
  assert _batching.image_peak_bytes((40, 48, 3), SMALL) > 3 * per_image
  assert 20 * 24 * 16 * 4 * 5 < per_image
  for budget, expected in ((10 * per_image, 3), (2 * per_image, 1), (3 * per_image, 2), (0, 1)):
    assert _batching.auto_chunk_size((20, 24, 3), 3, SMALL, budget_bytes=budget) == expected
  assert _batching.available_bytes() > 0


STABLE = Config(n_channels=8, iterations=30, stop_rule="stable", stable_fraction=0.02,
                stable_iterations=2)


def test_stable_rule_stops_when_labels_stop_changing():
  """With no learning the labels never change: one iteration to have a previous argmax,
  then `stable_iterations` calm ones. A fraction of 0 on a learning run is never met."""
  frozen = dataclasses.replace(STABLE, learning_rate=0.0, momentum=0.0)
  r = segment_one(jax.random.key(0), _image(0, (16, 16, 3)), frozen)
  assert int(r.iterations) == 1 + frozen.stable_iterations
  assert STOP_REASONS[int(r.stop_reason)] == "stable"
  np.testing.assert_array_equal(np.asarray(r.history.changed)[:3], [1.0, 0.0, 0.0])
  never = dataclasses.replace(STABLE, stable_fraction=0.0, stable_iterations=1, iterations=6)
  r = segment_one(jax.random.key(0), np.random.default_rng(0).uniform(size=(16, 16, 3)).astype(
      np.float32), never)
  changed = np.asarray(r.history.changed)
  assert int(r.iterations) == 6 and STOP_REASONS[int(r.stop_reason)] == "cap"
  assert np.all(changed > 0)  # it kept changing, so it kept going


@pytest.mark.parametrize("batching", ["vmap", "sequential"])
def test_stable_rule_lanes_stop_independently(batching):
  two_regions = np.zeros((16, 16, 3), np.float32)
  two_regions[:8] = 0.9
  two_regions[8:] = 0.1
  noise = np.random.default_rng(0).uniform(size=(16, 16, 3)).astype(np.float32)
  images, keys = np.stack([two_regions, noise]), image_keys(3, 2)
  batch = segment_batch(keys, images, STABLE, batching=batching)
  stops = []
  for i in range(2):
    one = segment_one(keys[i], images[i], STABLE)
    assert int(batch.iterations[i]) == int(one.iterations)
    assert int(batch.stop_reason[i]) == int(one.stop_reason)
    changed = np.asarray(one.history.changed)[:int(one.iterations)]
    calm = changed <= STABLE.stable_fraction
    if STOP_REASONS[int(one.stop_reason)] == "stable":  # the last two iterations were calm
      assert calm[-2:].all() and not (calm[:-1] & np.roll(calm, -1)[:-1])[:-1].any()
    stops.append(int(one.iterations))
  assert stops[0] != stops[1], stops


def test_published_rule_reports_why_it_stopped():
  early = Config(n_channels=8, iterations=40, min_labels=6)
  r = segment_one(jax.random.key(1), _image(1), early)
  assert STOP_REASONS[int(r.stop_reason)] == ("min_labels" if int(r.iterations) < 40 else "cap")
  assert r.history.changed is None  # the published rule carries nothing more
  r = segment_one(jax.random.key(1), _image(1), SMALL)
  assert STOP_REASONS[int(r.stop_reason)] == "cap"


COARSE = Config(n_channels=8, iterations=5, early_stop=False, schedule=((0.5, 3),))


def test_schedule_coarse_stage_is_a_flat_run_on_the_resized_image():
  """The first 3 iterations of the schedule are exactly a flat 3-iteration run on the image
  resized to half (the parameters' shapes do not depend on the image size, so the same key
  gives the same initial network); the full-resolution stage then continues the count."""
  image = _image(2, (24, 32, 3))
  coarse = jax.image.resize(image, (12, 16, 3), "linear", antialias=True)
  flat = segment_one(jax.random.key(4), np.asarray(coarse),
                     dataclasses.replace(COARSE, iterations=3, schedule=()))
  staged = segment_one(jax.random.key(4), image, COARSE)
  np.testing.assert_allclose(staged.history.total[:3], flat.history.total, rtol=1e-5)
  assert staged.labels.shape == (24, 32) and int(staged.iterations) == 5
  assert np.all(np.isfinite(np.asarray(staged.history.total)))


def test_schedule_parameters_carry_across_resolutions():
  """Each stage's loop starts from the state the previous one ended with (recorded through
  `loop_fn`), at the stage's resolution; a fresh network would start from the initial one."""
  entered, left = [], []

  def recording_loop(cond, body, state):
    entered.append(state)
    state = python_loop(cond, body, state)
    left.append(state)
    return state

  staged = dataclasses.replace(COARSE, early_stop=True, stop_rule="stable", stable_fraction=0.0)
  segment_image(jax.random.key(0), jnp.asarray(_image(0)), staged, loop_fn=recording_loop)
  assert [int(s.step) for s in entered] == [0, 3] and int(left[-1].step) == 5
  assert entered[0].previous.shape == (10, 12) and entered[1].previous.shape == (20, 24)
  for a, b in zip(jax.tree.leaves(left[0].params), jax.tree.leaves(entered[1].params)):
    np.testing.assert_array_equal(a, b)
  moved = [not np.array_equal(a, b) for a, b in
           zip(jax.tree.leaves(entered[0].params), jax.tree.leaves(entered[1].params))]
  assert any(moved)


def test_schedule_stage_that_stops_early_keeps_its_budget_to_itself():
  """Each stage's budget counts from where it starts: a coarse stage stopped early by the
  stable rule does not pass its unused iterations to the full-resolution stage (which
  would make early stopping cost more, not less). The loop bound each stage's loop was
  given is read off its condition."""
  entered, ends = [], []

  def recording_loop(cond, body, state):
    entered.append(int(state.step))
    free = state._replace(stopped=jnp.array(False))
    ends.append(next(k for k in range(20) if not bool(cond(free._replace(step=jnp.array(k))))))
    return python_loop(cond, body, state)

  staged = dataclasses.replace(COARSE, iterations=10, schedule=((0.5, 6),), early_stop=True,
                               stop_rule="stable", stable_fraction=1.0, stable_iterations=1)
  segment_image(jax.random.key(0), jnp.asarray(_image(0)), staged, loop_fn=recording_loop)
  assert entered[0] == 0 and ends[0] == 6
  assert entered[1] < 6 and ends[1] == entered[1] + 4


def test_flat_schedule_is_todays_loop_and_bad_schedules_are_refused():
  a = segment_one(jax.random.key(3), _image(1), SMALL)
  b = segment_one(jax.random.key(3), _image(1), dataclasses.replace(SMALL, schedule=()))
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.history.total, b.history.total)
  for bad in (((1.0, 2),), ((0.5, 0),), ((0.5, 6),)):
    with pytest.raises(ValueError, match="schedule"):
      dataclasses.replace(SMALL, schedule=bad)
