"""The per-image SGSCN optimisation: a fresh network trained on ONE image.

`segment_image(key, image, config)` is the pure, traceable function for one image
`[*spatial, C_in]` and one key; `sgscn_jax.core.batching` jits it (`segment_one`) and maps
it over a batch (`segment_batch`) in one place. The loop is a `lax.while_loop` (early
stopping, each image of a batch freezing on its own) or a `lax.fori_loop` (a fixed number
of iterations) over a `LoopState`; `loop_fn` replaces it (e.g. a Python loop in a test).

One iteration (the published loop):
  S = F(params, image);  C = argmax S  (pre-update labels, counted for the stopping rule)
  L = sum_n w_n L_n(S, image, x);  params <- SGD-momentum(params, dL/dparams)
  stop if |unique(C)| <= min_labels (early_stop) or if L or its gradient is not finite
After the loop the labels are the argmax of F(params, image), renumbered 0..K-1.

The coordinates x of L_cc span [-1, 1] per axis, or, given a `spacing` (physical voxel
size per axis, an array argument, not part of the static `Config`), keep the image's
physical proportions (`losses.coordinate_grid`).
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import chex

from sgscn_jax.core import consistency  # noqa: F401 - registers the L_AT loss terms
from sgscn_jax.core import losses
from sgscn_jax.core import network
from sgscn_jax.core.config import Config

MAX_INPUT_CHANNELS = 16


# Why an image stopped (`Segmentation.stop_reason`).
STOP_REASONS = ("cap", "min_labels", "stable", "non_finite")


class History(NamedTuple):
  """Per-iteration record; entries after the last iteration run are NaN (or -1)."""
  total: jax.Array              # [T] float32, weighted total loss
  terms: Dict[str, jax.Array]   # name -> [T] float32, each unweighted loss term
  n_labels: jax.Array           # [T] int32, distinct labels of the pre-update argmax
  changed: Optional[jax.Array] = None  # [T] float32, share of pixels whose pre-update
                                       # argmax changed (the "stable" rules only)


class LoopState(NamedTuple):
  step: jax.Array               # [] int32, iterations done
  params: network.Params
  opt_state: optax.OptState
  stopped: jax.Array            # [] bool, no further update for this image
  finite: jax.Array             # [] bool, False once the loss or a gradient was not finite
  history: History
  previous: Optional[jax.Array] = None  # [*spatial] int32, last pre-update argmax ("stable")
  calm: Optional[jax.Array] = None      # [] int32, consecutive calm iterations ("stable")
  reason: Optional[jax.Array] = None    # [] int32, index into STOP_REASONS ("stable")


class Segmentation(NamedTuple):
  """Result for one image (with a leading batch axis from `segment_batch`)."""
  labels: jax.Array             # [*spatial] int32 in 0..n_labels-1
  n_labels: jax.Array           # [] int32, K
  iterations: jax.Array         # [] int32, updates applied (a non-finite one is not)
  finite: jax.Array             # [] bool, False if the run stopped on a non-finite loss
  history: History
  stop_reason: Optional[jax.Array] = None  # [] int32, index into STOP_REASONS


def check_image(image, *, name: str = "image") -> None:
  """Raises ValueError naming the failed check and the shape/value seen.

  Expects `[H, W, C_in]` or `[D, H, W, C_in]`, float, every spatial axis >= 2 pixels,
  1 <= C_in <= MAX_INPUT_CHANNELS, all values finite.
  """
  shape = tuple(np.shape(image))
  if len(shape) not in (3, 4):
    raise ValueError(
        f"{name}: expected rank 3 [H, W, C] or rank 4 [D, H, W, C], got shape {shape}"
        + (" (a grey image needs a trailing channel axis: image[..., None])"
           if len(shape) == 2 else ""))
  if any(n < 2 for n in shape[:-1]):
    raise ValueError(f"{name}: every spatial axis needs at least 2 pixels, got shape {shape}")
  if not 1 <= shape[-1] <= MAX_INPUT_CHANNELS:
    raise ValueError(f"{name}: unsupported channel count {shape[-1]} (shape {shape}); "
                     f"expected 1 to {MAX_INPUT_CHANNELS} channels, last axis")
  if not isinstance(image, jax.core.Tracer):
    values = np.asarray(image)
    if (not np.issubdtype(values.dtype, np.number)
        or np.issubdtype(values.dtype, np.complexfloating)):
      raise ValueError(f"{name}: expected real numbers, got dtype {values.dtype}")
    bad = ~np.isfinite(values)
    if bad.any():
      where = tuple(int(i) for i in np.argwhere(bad)[0])
      raise ValueError(f"{name}: {int(bad.sum())} non-finite values (NaN or infinity), "
                       f"first at index {where}: {values[where]}")


def _optimizer(config: Config) -> optax.GradientTransformation:
  # PyTorch SGD with momentum: v <- mu v + g; p <- p - lr v. optax.sgd is the same rule.
  return optax.sgd(config.learning_rate, momentum=config.momentum)


def count_labels(labels: jax.Array, n_channels: int) -> jax.Array:
  """Number of distinct values of an int label map with values in [0, n_channels)."""
  present = jnp.zeros((n_channels,), jnp.bool_).at[labels.ravel()].set(True)
  return jnp.sum(present).astype(jnp.int32)


def renumber(labels: jax.Array, n_channels: int):
  """Maps the used labels to 0..K-1, keeping their order. Returns `(labels, K)`."""
  present = jnp.zeros((n_channels,), jnp.int32).at[labels.ravel()].set(1)
  new_id = jnp.cumsum(present) - 1
  return new_id[labels].astype(jnp.int32), jnp.sum(present).astype(jnp.int32)


def _tree_select(pred, new, old):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


# The loss key of an image is fold_in(its key, LOSS_KEY_TAG); iteration i uses
# fold_in(loss key, i). Only terms that need a `losses.LossContext` draw from it.
LOSS_KEY_TAG = 0x4C4F5353


def _loss_context(loss_key, params, image, step, config: Config):
  """The `losses.LossContext` of this iteration, or None when no active term needs one
  (then nothing here enters the program: the default configuration is unchanged)."""
  if loss_key is None or not losses.needs_context(config.active_terms):
    return None
  return losses.LossContext(
      apply=lambda x: network.apply_consistency_head(params, x, config),
      key=jax.random.fold_in(loss_key, step), step=step)


def _update_step(state: LoopState, image, coordinates, config: Config,
                 loss_key=None) -> LoopState:
  """One SGSCN iteration on one image (see the module docstring)."""
  weights = config.active_terms

  def objective(params):
    response = network.apply(params, image, config)
    context = _loss_context(loss_key, params, image, state.step, config)
    total, terms = losses.total_loss(response, image, coordinates, weights, context)
    return total, (terms, losses.cluster_labels(response))

  (total, (terms, labels)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)

  n_labels = count_labels(labels, config.n_channels)
  finite = jnp.isfinite(total) & jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  stopped = ~finite
  i = state.step
  extra = {}
  if state.previous is None:  # the published rule alone: the state carries nothing more
    if config.early_stop:
      stopped = stopped | (n_labels <= config.min_labels)
    changed_history = None
  else:
    changed = jnp.mean((labels != state.previous).astype(jnp.float32))
    calm = jnp.where(changed <= config.stable_fraction, state.calm + 1, 0).astype(jnp.int32)
    fired_min = (n_labels <= config.min_labels) & (config.stop_rule == "either")
    fired_stable = calm >= config.stable_iterations
    stopped = stopped | fired_min | fired_stable
    reason = jnp.where(fired_min, 1, jnp.where(fired_stable, 2, state.reason)).astype(jnp.int32)
    extra = {"previous": labels.astype(jnp.int32), "calm": calm, "reason": reason}
    changed_history = state.history.changed.at[i].set(changed)

  history = History(
      total=state.history.total.at[i].set(total),
      terms={n: state.history.terms[n].at[i].set(v) for n, v in terms.items()},
      n_labels=state.history.n_labels.at[i].set(n_labels), changed=changed_history)
  applied = LoopState(i + 1, params, opt_state, stopped, finite, history, **extra)
  rejected = LoopState(i, state.params, state.opt_state, jnp.array(True), jnp.array(False),
                       history, state.previous, state.calm, state.reason)
  new = _tree_select(finite, applied, rejected)
  # An image that had already stopped (a frozen lane of a fixed-length batch) keeps its state.
  return _tree_select(state.stopped, state, new)


def _initial_state(key, image, config: Config) -> LoopState:
  params = network.init(key, image.shape, config)
  t = config.iterations
  nan = jnp.full((t,), jnp.nan, jnp.float32)
  stable = config.early_stop and config.stop_rule != "min_labels"
  history = History(total=nan, terms={n: nan for n, _ in config.active_terms},
                    n_labels=jnp.full((t,), -1, jnp.int32), changed=nan if stable else None)
  extra = {}
  if stable:  # the previous argmax (none yet: -1 everywhere), calm count, stop reason (cap)
    extra = {"previous": jnp.full(image.shape[:-1], -1, jnp.int32),
             "calm": jnp.array(0, jnp.int32), "reason": jnp.array(0, jnp.int32)}
  return LoopState(jnp.array(0, jnp.int32), params, _optimizer(config).init(params),
                   jnp.array(False), jnp.array(True), history, **extra)


# `loop_fn(cond_fun, body_fun, init_state) -> state`, the signature of `lax.while_loop`.
LoopFn = Callable[[Callable, Callable, LoopState], LoopState]


def python_loop(cond_fun, body_fun, state):
  """`lax.while_loop` as a plain Python loop, for tests and debugging: the state is a
  concrete value between iterations (print it, stop in a debugger); each iteration's body
  is one compiled step (`jax.jit`), the loop itself is Python. Call it un-jitted."""
  step = jax.jit(body_fun)
  while bool(cond_fun(state)):
    state = step(state)
  return state


def segment_image(key, image, config: Config, spacing=None, *,
                  loop_fn: Optional[LoopFn] = None) -> Segmentation:
  """The whole optimisation of one image: pure and traceable (no input checks, no jit).

  Args:
    key: a typed PRNG key for the network's initialisation.
    image: `[*spatial, C_in]` float.
    config: the static `Config`.
    spacing: optional `[r]` physical pixel size per spatial axis (see `segment_one`).
    loop_fn: None (`lax.while_loop` under early stopping, else `lax.fori_loop`, the
      compiled default), or a function with `lax.while_loop`'s signature run as the loop
      (`python_loop` runs it step by step in Python, un-jitted, with the same result).

  With a `config.schedule`, the coarse stages run first on resized copies of the image
  (`stage_shapes`), each as its own loop over the same state (parameters, optimiser state,
  history and step count carry over); the last stage is the full-resolution one.
  """
  chex.assert_rank(image, {3, 4})
  image = image.astype(jnp.float32)
  state = _initial_state(key, image, config)
  # A per-image constant closed over by the loop body (not carried: nothing changes for
  # configurations without a context term).
  loss_key = (jax.random.fold_in(key, LOSS_KEY_TAG) if losses.needs_context(config.active_terms)
              else None)
  shapes = stage_shapes(image.shape[:-1], config)
  planned = 0   # where each stage starts when no stage stops early (static)
  for shape, (_, n) in zip(shapes, config.schedule):
    coarse = jax.image.resize(image, shape + image.shape[-1:], "linear", antialias=True)
    state = _restart_stage(state, shape)
    state = _run_loop(state, coarse, config, spacing, _stage_end(state, planned, n, config),
                      loop_fn, fixed_start=planned, loss_key=loss_key)
    planned += n
  if config.schedule:
    state = _restart_stage(state, image.shape[:-1])
  state = _run_loop(state, image, config, spacing,
                    _stage_end(state, planned, config.iterations - planned, config), loop_fn,
                    fixed_start=planned, loss_key=loss_key)
  response = network.apply(state.params, image, config)
  chex.assert_shape(response, image.shape[:-1] + (config.n_channels,))
  labels, k = renumber(losses.cluster_labels(response), config.n_channels)
  # Why it stopped: after the loop, from the state (the published rule carries nothing).
  if state.reason is not None:
    rule = state.reason
  else:
    rule = jnp.where(state.stopped & (state.step < config.iterations) & config.early_stop, 1, 0)
  reason = jnp.where(state.finite, rule, 3).astype(jnp.int32)
  # `step` counts applied updates; a rejected (non-finite) one is in the history only.
  return Segmentation(labels, k, state.step, state.finite, state.history, reason)


def stage_shapes(spatial_shape, config: Config) -> Tuple[Tuple[int, ...], ...]:
  """The spatial shape of each coarse stage of `config.schedule`: every axis scaled and
  rounded, at least 2 pixels (the full-resolution last stage is not listed)."""
  return tuple(tuple(max(2, int(round(n * scale))) for n in spatial_shape)
               for scale, _ in config.schedule)


def _stage_end(state: LoopState, planned: int, n: int, config: Config):
  """The step at which a stage of at most `n` iterations ends. Each stage has its own
  budget, counted from where it starts: a coarse stage that stops early does not hand its
  unused iterations to the next (more expensive) one. Without early stopping every stage
  runs its budget, so the end is the static `planned + n` (a `fori_loop` bound); the flat
  loop's end is `config.iterations`, as it always was."""
  if not config.schedule or not config.early_stop:
    return planned + n
  return state.step + n


def _restart_stage(state: LoopState, shape) -> LoopState:
  """The state at the start of a schedule stage on images of spatial `shape`: a stop of the
  previous stage's rule is forgotten (a non-finite stop is kept), and the "stable" rule
  starts afresh (no previous argmax at this shape, no calm iterations, reason "cap")."""
  state = state._replace(stopped=~state.finite)
  if state.previous is None:
    return state
  return state._replace(previous=jnp.full(tuple(shape), -1, jnp.int32),
                        calm=jnp.zeros_like(state.calm), reason=jnp.zeros_like(state.reason))


def _run_loop(state, image, config, spacing, end, loop_fn, *, fixed_start=0, loss_key=None):
  """Runs update steps on `image` until `state.step == end` or the stop rule fires."""
  coordinates = losses.coordinate_grid(image.shape[:-1], spacing)
  step = functools.partial(_update_step, image=image, coordinates=coordinates, config=config,
                           loss_key=loss_key)
  if loop_fn is not None:
    stop_rule = (lambda s: ~s.stopped) if config.early_stop else (lambda s: True)
    return loop_fn(lambda s: (s.step < end) & stop_rule(s), step, state)
  if config.early_stop:
    return lax.while_loop(lambda s: (s.step < end) & ~s.stopped, step, state)
  return lax.fori_loop(fixed_start, end, lambda _, s: step(s), state)


def as_key(key) -> jax.Array:
  """A typed PRNG key (or keys) from a typed key or raw uint32 key data `[..., 2]`."""
  key = key if isinstance(key, jax.Array) else jnp.asarray(key)
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  return jax.random.wrap_key_data(key.astype(jnp.uint32))


def check_spacing(spacing, rank: int, *, name: str = "spacing"):
  """`spacing` as float32 `[rank]` (None stays None); ValueError unless all are finite > 0."""
  if spacing is None:
    return None
  values = np.asarray(spacing, np.float64)
  if values.shape != (rank,) or not np.all(np.isfinite(values)) or not np.all(values > 0):
    raise ValueError(f"{name}: expected {rank} finite positive voxel sizes (one per "
                     f"spatial axis), got {spacing!r}")
  return jnp.asarray(values, jnp.float32)


def image_keys(seed: int, n: int) -> jax.Array:
  """`n` independent keys from one integer seed: key_i = fold_in(key(seed), i).

  Image i of a data set gets key i whatever the batch it is run in.

  Examples:
    >>> import jax
    >>> from sgscn_jax import image_keys
    >>> keys = image_keys(0, 4)
    >>> keys.shape
    (4,)
    >>> bool((jax.random.key_data(keys[2]) ==
    ...       jax.random.key_data(jax.random.fold_in(jax.random.key(0), 2))).all())
    True
  """
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n))
