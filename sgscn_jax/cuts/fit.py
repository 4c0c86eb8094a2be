"""Fitting CUTS's encoder on a set of images: `fit(images, config, key) -> state`.

    state = {"params": {"encoder", "decoder"},   # encoder.init's pytree
             "mean": [C], "std": [C],             # the fit images' channel statistics
             "loss": [steps, 3]}                  # total, contrastive, reconstruction

Each step draws `images_per_step` images and `anchors_per_image` anchors in each
(`sampling.sample_batch`), embeds the anchors' and positives' crops, reconstructs the
anchors' patches and takes one AdamW step on

    L = lambda mean_images(L_con) + (1 - lambda) L_rec            (losses.cuts_loss)

One jitted step (`train_step`, params and optimiser state donated) is called by a host
loop; step t's key is `fold_in(key, t)`, so the same key gives the same state whatever the
progress granularity; the progress bar moves every `steps_per_call` steps.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgscn_jax.cuts import encoder, sampling
from sgscn_jax.cuts.config import CutsConfig
from sgscn_jax.cuts.losses import cuts_loss, nt_xent_loss, patch_reconstruction_loss
from sgscn_jax.reporting import progress

State = Dict[str, Any]


def channel_statistics(images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(mean `[C]`, std `[C]`) over every pixel of every image (std floored at 1e-6)."""
  flat = np.concatenate([np.asarray(im, np.float64).reshape(-1, im.shape[-1]) for im in images])
  return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-6).astype(np.float32)


def optimizer(config: CutsConfig) -> optax.GradientTransformation:
  """AdamW, linear warm-up from 1e-3 of the rate over `warmup_fraction` of the steps, then
  cosine decay to 0 (CUTS: LinearWarmupCosineAnnealingLR over epochs)."""
  warmup = max(1, int(round(config.warmup_fraction * config.steps)))
  schedule = optax.warmup_cosine_decay_schedule(
      1e-3 * config.learning_rate, config.learning_rate, warmup, max(config.steps, warmup + 1))
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def batch_loss(params, samples: sampling.Samples, config: CutsConfig):
  """(L, (L_con, L_rec)) of one batch of samples `[B, S, ...]`."""
  b, s = samples.anchors.shape[:2]
  c = samples.anchors.shape[-1]
  crops = jnp.concatenate([samples.anchors, samples.positives], 1)        # [B, 2S, Q, Q, C]
  z = encoder.embed_padded(params, crops.reshape((-1,) + crops.shape[2:]), config)
  z = z.reshape(b, 2 * s, -1)                                             # [B, 2S, L]
  contrastive = jnp.mean(jax.vmap(nt_xent_loss, (0, 0, None))(
      z[:, :s], z[:, s:], config.temperature))
  recon = encoder.reconstruct(params, z[:, :s], c, config)                # [B, S, P, P, C]
  reconstruction = patch_reconstruction_loss(samples.real, recon)
  total = cuts_loss(contrastive, reconstruction, config.contrastive_weight)
  return total, (contrastive, reconstruction)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0, 1))
def train_step(params, opt_state, key, t, canvas, shapes, config: CutsConfig):
  """Step `t`: samples from `fold_in(key, t)`, one AdamW update; returns (params, opt_state,
  losses `[3]`: total, contrastive, reconstruction). A host loop calls it: XLA's CPU
  convolutions measured 4x slower inside a `lax.scan` / `fori_loop` body (0.43 s against
  1.7 s per step, 2 cores), so the loop stays on the host, one compiled step."""
  tx = optimizer(config)
  samples = sampling.sample_batch(jax.random.fold_in(key, t), canvas, shapes, config)
  (total, parts), grads = jax.value_and_grad(batch_loss, has_aux=True)(params, samples, config)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, jnp.stack([total, *parts])


def fit(images: Sequence[np.ndarray], config: CutsConfig, key: jax.Array, *,
        show_progress: bool = True, stream=None) -> State:
  """Fits the encoder on `images` (each `[H, W, C]` float32, shapes may differ).

  Args:
    images: the fit's images, at least one; every one has the same channel count and sides
      of at least `patch_size`.
    config: `CutsConfig` (its fit fields).
    key: the fit's key (the initial parameters from `fold_in(key, 0)`, step t's samples
      from `fold_in(fold_in(key, 1), t)`).
    show_progress: a progress bar on `stream` (stderr) moving per chunk of steps.

  Returns:
    The state (module docstring): NumPy arrays, a nested dict.
  """
  if not images:
    raise ValueError("cuts: fit needs at least one image")
  channels = {im.shape[-1] for im in images}
  if len(channels) != 1:
    raise ValueError(f"cuts: the fit images have different channel counts {sorted(channels)}")
  small = [im.shape for im in images if min(im.shape[:2]) < config.patch_size + 2]
  if small:
    raise ValueError(f"cuts: fit images must be at least {config.patch_size + 2} px a side, "
                     f"got {small[0]}")
  mean, std = channel_statistics(images)
  canvas, shapes = sampling.canvas([(np.asarray(im, np.float32) - mean) / std for im in images],
                                   config.receptive_radius)
  params = encoder.init(jax.random.fold_in(key, 0), canvas.shape[-1], config)
  opt_state = optimizer(config).init(params)
  step_key = jax.random.fold_in(key, 1)
  canvas, shapes = jnp.asarray(canvas), jnp.asarray(shapes)
  losses = []
  bar = (progress.ProgressBar(config.steps, "cuts fit, steps", stream=stream or sys.stderr)
         if show_progress else None)
  done = 0
  while done < config.steps:
    count = min(config.steps_per_call, config.steps - done)
    chunk = []
    for t in range(done, done + count):
      params, opt_state, loss = train_step(params, opt_state, step_key, jnp.int32(t), canvas,
                                           shapes, config)
      chunk.append(loss)
    chunk = np.asarray(jnp.stack(chunk))
    losses.append(chunk)
    done += count
    if bar is not None:
      bar.update(count, note=f"loss {chunk[-1, 0]:.4f} (con {chunk[-1, 1]:.3f}, "
                             f"rec {chunk[-1, 2]:.4f})")
  if bar is not None:
    bar.close()
  loss = np.concatenate(losses) if losses else np.zeros((0, 3), np.float32)
  if not np.all(np.isfinite(loss)):
    bad = int(np.argmin(np.all(np.isfinite(loss), 1)))
    raise FloatingPointError(f"cuts: the fit's loss is not finite from step {bad}")
  return {"params": jax.tree.map(np.asarray, params), "mean": mean, "std": std,
          "loss": loss.astype(np.float32)}


def steps_for(seconds: float, seconds_per_step: float) -> int:
  """The steps that fit a time budget (used by the benchmark's plan), at least 1."""
  return max(1, int(math.floor(seconds / max(seconds_per_step, 1e-9))))
