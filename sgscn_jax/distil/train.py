"""Training the student: `train(images, targets, weights, config, key) -> (params, losses)`.

Each step takes `batch_size` examples (epochs of random permutations of the fit set, drawn on
the host), augments each inside the jitted step (`augment.augment`, example b with key
`split(fold_in(key, t), B)[b]`), normalises it with the fit set's channel statistics,

    x <- (x - mean) / std,

and takes one AdamW step on `losses.distil_loss` (lr: a linear warm-up from 0 over
`warmup_fraction` of the steps, then cosine decay to 0; `optax.warmup_cosine_decay_schedule`).

Scale: the step is `jax.jit` over a 1-D mesh with axis "batch" (default: every device,
`jax.devices()`). The batch `[B, ...]` is laid out `NamedSharding(mesh, P("batch"))` (B / n
examples per device), parameters, optimiser state, statistics and key are replicated
(`P()`); XLA sums the gradients across devices. One process or many (`jax.distributed`):
every process holds the whole fit set and builds the global batch with
`jax.make_array_from_callback`, which gives each device its own slice. The same code runs
on one CPU, N host devices (`--xla_force_host_platform_device_count`) or N accelerators.

One compiled step per (config, mesh), parameters and optimiser state donated; the loop
stays on the host (CUTS measured XLA's CPU convolutions 4x slower inside a `lax` loop).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Iterator, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sgscn_jax.core.sharding import BATCH_AXIS
from sgscn_jax.distil import augment, losses, network
from sgscn_jax.distil.config import DistilConfig

Params = Any


def default_mesh() -> Mesh:
  """A 1-D mesh with axis "batch" over every device of every process."""
  return Mesh(np.array(jax.devices()), (BATCH_AXIS,))


def optimizer(config: DistilConfig) -> optax.GradientTransformation:
  """AdamW with a linear warm-up from 0 over `warmup_fraction` of the steps (at least one),
  then cosine decay to 0 at the last step."""
  warmup = max(1, int(round(config.warmup_fraction * config.steps)))
  schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup,
                                                max(config.steps, warmup + 1))
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def channel_statistics(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(mean `[C]`, std `[C]`) over every pixel of `images` `[N, S, S, C]` (std >= 1e-3)."""
  flat = np.asarray(images, np.float64).reshape(-1, images.shape[-1])
  return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32)


def batch_loss(params: Params, images, targets, weights, mean, std, config: DistilConfig):
  """(L, (L_ce, L_dice)) of a batch already augmented: images `[B, S, S, C]` in [0, 1]."""
  x = (images - mean[None, None, None]) / std[None, None, None]
  logits = network.apply(params, x, config.width, config.depth)
  total, ce, dice = losses.distil_loss(logits, targets, weights, config.loss)
  return total, (ce, dice)


def _step(params, opt_state, images, targets, weights, mean, std, key, t, *,
          config: DistilConfig):
  keys = jax.random.split(jax.random.fold_in(key, t), images.shape[0])
  images, targets, weights = jax.vmap(augment.augment, (0, 0, 0, 0, None))(
      keys, images, targets, weights, config)
  (total, (ce, dice)), grads = jax.value_and_grad(batch_loss, has_aux=True)(
      params, images, targets, weights, mean, std, config)
  updates, opt_state = optimizer(config).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, jnp.stack([total, ce, dice])


# Fields the step does not read: set to their defaults before it is compiled, so that runs
# differing only in them (the teacher, rounds, inference settings) share one program.
NOT_IN_STEP = ("teacher", "teacher_seeds", "teacher_quick", "batch_size", "confidence", "rounds",
               "threshold", "tta", "keep_pieces", "fill_holes", "log_every")


def step_config(config: DistilConfig) -> DistilConfig:
  """`config` with the fields the step does not read (`NOT_IN_STEP`) at their defaults."""
  default = DistilConfig()
  return dataclasses.replace(config, **{f: getattr(default, f) for f in NOT_IN_STEP})


def train_step(config: DistilConfig, mesh: Mesh):
  """`_train_step(step_config(config), mesh)`."""
  return _train_step(step_config(config), mesh)


@functools.lru_cache(maxsize=None)
def _train_step(config: DistilConfig, mesh: Mesh):
  """The jitted step for `config` on `mesh`:

      step(params, opt_state, images [B, S, S, C], targets [B, S, S], weights [B, S, S],
           mean [C], std [C], key, t) -> (params, opt_state, losses [3]: L, L_ce, L_dice)

  batch arguments sharded over "batch", the rest replicated (module docstring)."""
  rep, data = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
  return jax.jit(functools.partial(_step, config=config),
                 in_shardings=(rep, rep, data, data, data, rep, rep, rep, rep),
                 out_shardings=(rep, rep, rep), donate_argnums=(0, 1))


def put(tree, sharding: NamedSharding):
  """Host arrays (the same on every process) as global arrays laid out by `sharding`."""
  def one(a):
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])
  return jax.tree.map(one, tree)


def to_host(tree):
  """Replicated global arrays as NumPy (this process's copy)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def batch_order(key: jax.Array, n: int, batch_size: int) -> Iterator[np.ndarray]:
  """Batches of `batch_size` indices into the fit set: one random permutation of the n
  images after another (an epoch), drawn with `key`; the same key, the same order."""
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  pending = np.zeros(0, np.int64)
  while True:
    while len(pending) < batch_size:
      pending = np.concatenate([pending, rng.permutation(n)])
    yield pending[:batch_size]
    pending = pending[batch_size:]


def train(images: np.ndarray, targets: np.ndarray, weights: np.ndarray, mean: np.ndarray,
          std: np.ndarray, config: DistilConfig, key: jax.Array, *,
          mesh: Optional[Mesh] = None, stream=None,
          label: str = "distil") -> Tuple[Params, np.ndarray]:
  """Trains a fresh student.

  Args:
    images: `[N, S, S, C]` float32 in [0, 1] at the student's size S = `config.size`.
    targets, weights: `[N, S, S]` float32 in [0, 1] (the teacher's object, its confidence).
    mean, std: `[C]` the fit set's channel statistics (kept in the state).
    key: initial parameters from `fold_in(key, 0)`, the batch order from `fold_in(key, 1)`,
      step t's augmentations from `fold_in(fold_in(key, 2), t)`.
    mesh: a 1-D mesh with axis "batch" (default `default_mesh()`); `batch_size` must be a
      multiple of its size.
    stream: where the progress lines go (stderr), every `log_every` steps.

  Returns:
    (parameters as a nested dict of NumPy arrays, losses `[steps, 3]`: L, L_ce, L_dice).
  """
  mesh = default_mesh() if mesh is None else mesh
  if config.batch_size % mesh.size:
    raise ValueError(f"distil: batch_size {config.batch_size} cannot be split evenly over "
                     f"{mesh.size} devices; use a multiple of {mesh.size}")
  if images.shape[1:3] != (config.size, config.size):
    raise ValueError(f"distil: training images must be {config.size}x{config.size}, got "
                     f"{images.shape[1:3]}")
  rep = NamedSharding(mesh, PartitionSpec())
  data = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
  params = network.init(jax.random.fold_in(key, 0), images.shape[-1], config.width, config.depth)
  opt_state = optimizer(config).init(params)
  params, opt_state = put(params, rep), put(opt_state, rep)
  mean_d, std_d = put(np.asarray(mean, np.float32), rep), put(np.asarray(std, np.float32), rep)
  step_key = jax.random.fold_in(key, 2)
  step = train_step(config, mesh)
  order = batch_order(jax.random.fold_in(key, 1), len(images), config.batch_size)
  history = []
  for t in range(config.steps):
    idx = next(order)
    params, opt_state, loss = step(params, opt_state, put(images[idx], data),
                                   put(targets[idx], data), put(weights[idx], data),
                                   mean_d, std_d, step_key, jnp.int32(t))
    history.append(loss)
    if config.log_every and ((t + 1) % config.log_every == 0 or t + 1 == config.steps):
      now = to_host(loss)
      print(f"{label}: step {t + 1}/{config.steps}, loss {now[0]:.4f} (ce {now[1]:.4f}, "
            f"dice {now[2]:.4f})", file=stream or sys.stderr, flush=True)
  history = np.stack([to_host(h) for h in history]).astype(np.float32)
  if not np.all(np.isfinite(history)):
    bad = int(np.argmin(np.all(np.isfinite(history), 1)))
    raise FloatingPointError(f"distil: the student's loss is not finite from step {bad}")
  return to_host(params), history
