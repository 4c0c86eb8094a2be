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

The coordinates x of L_cc span [-1, 1] per axis, or, given a `spacing` (physical voxel
size per axis, an array argument, not part of the static `Config`), keep the image's
physical proportions (`losses.coordinate_grid`).
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
from sgscn_jax import memory
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


def _segment_one(key, image, config: Config, spacing=None) -> Segmentation:
  image = image.astype(jnp.float32)
  coordinates = losses.coordinate_grid(image.shape[:-1], spacing)
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
_segment_batch_jit = jax.jit(jax.vmap(_segment_one, in_axes=(0, 0, None, 0)),
                             static_argnums=2)


@functools.partial(jax.jit, static_argnums=2)
def _segment_batch_sequential_jit(keys, images, config: Config, spacing=None) -> Segmentation:
  return lax.map(lambda args: _segment_one(args[0], args[1], config, args[2]),
                 (keys, images, spacing))


def check_spacing(spacing, rank: int, *, name: str = "spacing"):
  """`spacing` as float32 `[rank]` (None stays None); ValueError unless all are finite > 0."""
  if spacing is None:
    return None
  values = np.asarray(spacing, np.float64)
  if values.shape != (rank,) or not np.all(np.isfinite(values)) or not np.all(values > 0):
    raise ValueError(f"{name}: expected {rank} finite positive voxel sizes (one per "
                     f"spatial axis), got {spacing!r}")
  return jnp.asarray(values, jnp.float32)


def _segment_batch_chunked(keys, images, config: Config, chunk_size: int,
                           spacing=None) -> Segmentation:
  return lax.map(lambda args: _segment_one(args[0], args[1], config, args[2]),
                 (keys, images, spacing), batch_size=chunk_size)


_segment_batch_chunked_jit = jax.jit(_segment_batch_chunked, static_argnums=(2, 3))


@functools.lru_cache(maxsize=64)
def image_peak_bytes(image_shape: tuple, config: Config) -> int:
  """Working memory of one image's whole optimisation, from XLA's own buffer assignment.

  Compiles (without running) the single-image program for `image_shape` `(*spatial, C_in)`
  and returns its temporary plus argument and output bytes. A vmapped chunk of n images
  needs about n times this. (2D, default config: about 19 `[P, C]` float32 buffers.)
  """
  key = jax.eval_shape(lambda: jax.random.key(0))
  image = jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32)
  stats = _segment_one_jit.lower(key, image, config).compile().memory_analysis()
  return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes)


def available_bytes(device=None) -> int:
  """Memory free for a new program: the accelerator's free memory, or (CPU) the host's
  `memory.available_bytes()`."""
  device = device or jax.devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  return int(memory.available_bytes())


def auto_chunk_size(image_shape: tuple, n_images: int, config: Config, *,
                    budget_bytes: int | None = None, safety: float = 0.8) -> int:
  """Images to vmap together so that a chunk fits in `safety` x the available memory.

  `floor(safety * budget / image_peak_bytes)`, clipped to [1, n_images]; with chunk 1 the
  batch runs one image after the other (peak memory of one image).
  """
  budget = available_bytes() if budget_bytes is None else budget_bytes
  per_image = image_peak_bytes(tuple(image_shape), config)
  return int(max(1, min(n_images, (safety * budget) // max(per_image, 1))))


def default_batching() -> str:
  """"vmap" on accelerators; "sequential" (`lax.map`, one image after the other inside one
  program) on CPU, where vmapping independent optimisations measured ~2x slower per image
  (docs/PERFORMANCE.md)."""
  return "sequential" if jax.default_backend() == "cpu" else "vmap"


def segment_one(key, image, config: Config = Config(), *, spacing=None) -> Segmentation:
  """Segments one image `[*spatial, C_in]` (float, e.g. in [0, 1]) with a fresh network.

  Args:
    key: a PRNG key (typed, or raw uint32[2]) for the network's initialisation.
    image: `[H, W, C_in]` or `[D, H, W, C_in]`.
    config: static; equal configurations share one compiled program per input shape.
    spacing: optional `[r]` physical pixel/voxel size per spatial axis (e.g. `(dz, dy, dx)`
      in mm): L_cc then measures compactness in physical units. None: every axis spans
      [-1, 1]. Not static: one program serves every spacing.
  """
  check_image(image)
  spacing = check_spacing(spacing, np.ndim(image) - 1)
  return _segment_one_jit(_as_key(key), jnp.asarray(image, jnp.float32), config, spacing)


def segment_batch(keys, images, config: Config = Config(), *,
                  batching: str | None = None, chunk_size: int | None = None,
                  spacing=None, mesh=None) -> Segmentation:
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
    chunk_size: with "vmap", the images run in chunks of this many vmapped images, one
      chunk after the other (`lax.map(..., batch_size=chunk_size)`): the memory of a chunk,
      not of the batch. None: `auto_chunk_size` from the image size and the memory
      available (the whole batch when it fits). Ignored by "sequential".
    spacing: optional physical pixel size per spatial axis, `[r]` (shared by every image)
      or `[B, r]` (see `segment_one`).
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
  if spacing is not None:
    rank = len(shape) - 2
    per_image = np.broadcast_to(np.asarray(spacing, np.float64), (shape[0], rank)) if (
        np.ndim(spacing) == 1) else np.asarray(spacing, np.float64)
    if per_image.shape != (shape[0], rank):
      raise ValueError(f"spacing: expected [{rank}] or [{shape[0]}, {rank}], "
                       f"got shape {np.shape(spacing)}")
    spacing = jnp.stack([check_spacing(s, rank, name=f"spacing[{b}]")
                         for b, s in enumerate(per_image)])
  images = jnp.asarray(images, jnp.float32)
  if mesh is not None:
    if spacing is not None:
      raise ValueError("segment_batch: spacing with a device mesh is not supported yet; "
                       "run volumes' slices without mesh=")
    fn = _segment_batch_jit if batching == "vmap" else _segment_batch_sequential_jit
    return sharding.segment_sharded(fn, keys, images, config, mesh)
  if batching == "sequential":
    return _segment_batch_sequential_jit(keys, images, config, spacing)
  if chunk_size is None:
    chunk_size = auto_chunk_size(shape[1:], shape[0], config)
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  if chunk_size >= shape[0]:
    return _segment_batch_jit(keys, images, config, spacing)
  return _segment_batch_chunked_jit(keys, images, config, int(chunk_size), spacing)


def image_keys(seed: int, n: int) -> jax.Array:
  """`n` independent keys from one integer seed: key_i = fold_in(key(seed), i)."""
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n))
