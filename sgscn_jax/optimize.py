"""Per-image SGSCN optimisation: a fresh network trained on one image, and its vmapped batch.

`segment_one(key, image, config)` is written for ONE image `[*spatial, C_in]`;
`segment_batch(keys, images, config)` is `jit(vmap(...))` of the very same function over a
leading batch axis. The loop is a `lax.while_loop` (early stopping, each image of a batch
freezing on its own) or a `lax.fori_loop` (a fixed number of iterations) over a `LoopState`.

One iteration (the published loop):
  S = F(params, image);  C = argmax S  (pre-update labels, counted for the stopping rule)
  L = sum_n w_n L_n(S, image, x);  params <- SGD-momentum(params, dL/dparams)
  stop if |unique(C)| <= min_labels (early_stop) or if L or its gradient is not finite
After the loop the labels are the argmax of F(params, image), renumbered 0..K-1.
"""

from __future__ import annotations

import functools
from typing import Dict, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sgscn_jax import losses
from sgscn_jax import network
from sgscn_jax import sharding
from sgscn_jax.config import Config

MAX_INPUT_CHANNELS = 16


class History(NamedTuple):
  """Per-iteration record; entries after the last iteration run are NaN (or -1)."""
  total: jax.Array              # [T] float32, weighted total loss
  terms: Dict[str, jax.Array]   # name -> [T] float32, each unweighted loss term
  n_labels: jax.Array           # [T] int32, distinct labels of the pre-update argmax


class LoopState(NamedTuple):
  step: jax.Array               # [] int32, iterations done
  params: network.Params
  opt_state: optax.OptState
  stopped: jax.Array            # [] bool, no further update for this image
  finite: jax.Array             # [] bool, False once the loss or a gradient was not finite
  history: History


class Segmentation(NamedTuple):
  """Result for one image (with a leading batch axis from `segment_batch`)."""
  labels: jax.Array             # [*spatial] int32 in 0..n_labels-1
  n_labels: jax.Array           # [] int32, K
  iterations: jax.Array         # [] int32, updates applied (a non-finite one is not)
  finite: jax.Array             # [] bool, False if the run stopped on a non-finite loss
  history: History


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
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
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


def _update_step(state: LoopState, image, coordinates, config: Config) -> LoopState:
  """One SGSCN iteration on one image (see the module docstring)."""
  weights = config.active_terms

  def objective(params):
    response = network.apply(params, image, config)
    total, terms = losses.total_loss(response, image, coordinates, weights)
    return total, (terms, losses.cluster_labels(response))

  (total, (terms, labels)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)

  n_labels = count_labels(labels, config.n_channels)
  finite = jnp.isfinite(total) & jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  stopped = ~finite
  if config.early_stop:
    stopped = stopped | (n_labels <= config.min_labels)

  i = state.step
  history = History(
      total=state.history.total.at[i].set(total),
      terms={n: state.history.terms[n].at[i].set(v) for n, v in terms.items()},
      n_labels=state.history.n_labels.at[i].set(n_labels))
  applied = LoopState(i + 1, params, opt_state, stopped, finite, history)
  rejected = LoopState(i, state.params, state.opt_state, jnp.array(True), jnp.array(False), history)
  new = _tree_select(finite, applied, rejected)
  # An image that had already stopped (a frozen lane of a fixed-length batch) keeps its state.
  return _tree_select(state.stopped, state, new)


def _initial_state(key, image, config: Config) -> LoopState:
  params = network.init(key, image.shape, config)
  t = config.iterations
  nan = jnp.full((t,), jnp.nan, jnp.float32)
  history = History(total=nan, terms={n: nan for n, _ in config.active_terms},
                    n_labels=jnp.full((t,), -1, jnp.int32))
  return LoopState(jnp.array(0, jnp.int32), params, _optimizer(config).init(params),
                   jnp.array(False), jnp.array(True), history)


def _segment_one(key, image, config: Config) -> Segmentation:
  image = image.astype(jnp.float32)
  coordinates = losses.coordinate_grid(image.shape[:-1])
  state = _initial_state(key, image, config)
  step = functools.partial(_update_step, image=image, coordinates=coordinates, config=config)
  if config.early_stop:
    state = lax.while_loop(lambda s: (s.step < config.iterations) & ~s.stopped, step, state)
  else:
    state = lax.fori_loop(0, config.iterations, lambda _, s: step(s), state)
  response = network.apply(state.params, image, config)
  labels, k = renumber(losses.cluster_labels(response), config.n_channels)
  # `step` counts applied updates; a rejected (non-finite) one is in the history only.
  return Segmentation(labels, k, state.step, state.finite, state.history)


def _as_key(key):
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  return jax.random.wrap_key_data(key.astype(jnp.uint32))


_segment_one_jit = jax.jit(_segment_one, static_argnames="config")
_segment_batch_jit = jax.jit(jax.vmap(_segment_one, in_axes=(0, 0, None)),
                             static_argnums=2)


@functools.partial(jax.jit, static_argnums=2)
def _segment_batch_sequential_jit(keys, images, config: Config) -> Segmentation:
  return lax.map(lambda args: _segment_one(args[0], args[1], config), (keys, images))


def default_batching() -> str:
  """"vmap" on accelerators; "sequential" (`lax.map`, one image after the other inside one
  program) on CPU, where vmapping independent optimisations measured ~2x slower per image
  (docs/PERFORMANCE.md)."""
  return "sequential" if jax.default_backend() == "cpu" else "vmap"


def segment_one(key, image, config: Config = Config()) -> Segmentation:
  """Segments one image `[*spatial, C_in]` (float, e.g. in [0, 1]) with a fresh network.

  Args:
    key: a PRNG key (typed, or raw uint32[2]) for the network's initialisation.
    image: `[H, W, C_in]` or `[D, H, W, C_in]`.
    config: static; equal configurations share one compiled program per input shape.
  """
  check_image(image)
  return _segment_one_jit(_as_key(key), jnp.asarray(image, jnp.float32), config)


def segment_batch(keys, images, config: Config = Config(), *,
                  batching: str | None = None, mesh=None) -> Segmentation:
  """`segment_one` for each of `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit.

  Each image's result equals its `segment_one` run with the same key (up to float
  reassociation); under early stopping each image stops when its own rule fires.

  Args:
    keys: `[B]` PRNG keys (typed, or raw `[B, 2]` uint32).
    images: `[B, *spatial, C_in]`.
    config: static.
    batching: "vmap" (`jax.vmap` of the per-image function: one vectorised program, the
      way to fill an accelerator; a stopped image's lane is frozen while others run),
      "sequential" (`lax.map`: the images one after the other inside one program) or
      None for `default_batching()`.
    mesh: None (one program on the default device) or a 1-D device mesh
      (`sharding.batch_mesh()`): the batch is split over its devices, each running the
      chosen batching on its own `B / n` images with no communication; B must be a
      multiple of the device count.
  """
  shape = tuple(np.shape(images))
  if len(shape) < 1:
    raise ValueError(f"images: expected [B, *spatial, C_in], got shape {shape}")
  for b in range(shape[0]):
    check_image(images[b], name=f"images[{b}]")
  keys = _as_key(keys)
  if keys.shape != (shape[0],):
    raise ValueError(f"keys: expected {shape[0]} keys (one per image), got key shape {keys.shape}")
  batching = batching or default_batching()
  if batching not in ("vmap", "sequential"):
    raise ValueError(f"batching must be 'vmap' or 'sequential', got {batching!r}")
  fn = _segment_batch_jit if batching == "vmap" else _segment_batch_sequential_jit
  if mesh is not None:
    return sharding.segment_sharded(fn, keys, jnp.asarray(images, jnp.float32), config, mesh)
  return fn(keys, jnp.asarray(images, jnp.float32), config)


def image_keys(seed: int, n: int) -> jax.Array:
  """`n` independent keys from one integer seed: key_i = fold_in(key(seed), i)."""
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n))
