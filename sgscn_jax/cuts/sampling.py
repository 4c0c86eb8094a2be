"""Where CUTS looks during its fit: anchors, positives and the crops the encoder sees.

An image is held normalised and padded by R (the encoder's receptive radius) with edge
copies, inside a zero canvas shared by the fit's images (`canvas`, `shapes`). Pixel (h, w)
of an image of shape (H, W) is then the centre of the canvas window starting at (h, w):
its (2R + 1)^2 crop gives the embedding of (h, w) exactly (`encoder`), and its P x P patch
starts at (h + R - P // 2, w + R - P // 2).

Per image (CUTS's `PatchSampler`, data_utils/patch_sampler.py): S anchors uniform in
[P // 2, H - P // 2) x [P // 2, W - P // 2); for each, up to A candidates uniform in
[max(h - r, P // 2), min(h + r, H - P // 2)) (r the positive radius; same for w); the
first candidate whose patch SSIM with the anchor's patch exceeds the threshold is the
positive, else the diagonal neighbour one pixel towards the image centre.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax.cuts.config import CutsConfig
from sgscn_jax.cuts.losses import patch_ssim


class Samples(NamedTuple):
  """One image's samples (a leading batch axis when vmapped)."""
  anchors: jax.Array     # [S, 2R+1, 2R+1, C] crops centred on the anchors
  positives: jax.Array   # [S, 2R+1, 2R+1, C] crops centred on their positives
  real: jax.Array        # [S, P, P, C] the anchors' patches (reconstruction targets)
  anchor_hw: jax.Array   # [S, 2] int32
  positive_hw: jax.Array  # [S, 2] int32
  accepted: jax.Array    # [S] bool: a candidate passed the SSIM test


def canvas(images: Sequence[np.ndarray], radius: int) -> tuple[np.ndarray, np.ndarray]:
  """(canvas `[N, H_max + 2R, W_max + 2R, C]` float32, shapes `[N, 2]` int32): each image
  edge-padded by `radius`, placed at the top left of a zero canvas."""
  shapes = np.array([im.shape[:2] for im in images], np.int32)
  h, w = shapes.max(0) + 2 * radius
  out = np.zeros((len(images), h, w, images[0].shape[-1]), np.float32)
  for i, im in enumerate(images):
    padded = np.pad(im, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out[i, :padded.shape[0], :padded.shape[1]] = padded
  return out, shapes


def _window(padded: jax.Array, start: jax.Array, side: int) -> jax.Array:
  return jax.lax.dynamic_slice(padded, (start[0], start[1], 0), (side, side, padded.shape[-1]))


def _uniform_int(key, lo, hi, shape):
  """Integers uniform in [lo, hi) (broadcast), hi > lo."""
  return lo + jnp.floor(jax.random.uniform(key, shape) * (hi - lo)).astype(jnp.int32)


def sample_image(key: jax.Array, padded: jax.Array, shape: jax.Array,
                 config: CutsConfig) -> Samples:
  """The samples of ONE image: `padded` `[H_c, W_c, C]` (its canvas slot), `shape` `[2]`."""
  s, a, r = config.anchors_per_image, config.positive_attempts, config.positive_radius
  p, big_r = config.patch_size // 2, config.receptive_radius
  k_anchor, k_candidate = jax.random.split(key)
  lo, hi = jnp.full((2,), p, jnp.int32), shape.astype(jnp.int32) - p
  anchors = _uniform_int(k_anchor, lo[None], hi[None], (s, 2))
  start = jnp.maximum(anchors - r, lo[None])[:, None]
  stop = jnp.minimum(anchors + r, hi[None])[:, None]
  candidates = _uniform_int(k_candidate, start, stop, (s, a, 2))
  patch = lambda hw: _window(padded, hw + big_r - p, config.patch_size)
  real = jax.vmap(patch)(anchors)                                     # [S, P, P, C]
  cand_patches = jax.vmap(jax.vmap(patch))(candidates)                # [S, A, P, P, C]
  ok = patch_ssim(real[:, None], cand_patches) > config.ssim_threshold  # [S, A]
  first = jnp.argmax(ok, axis=1)
  accepted = jnp.any(ok, axis=1)
  fallback = anchors + jnp.where(anchors > (shape // 2)[None], -1, 1)
  positives = jnp.where(accepted[:, None], candidates[jnp.arange(s), first], fallback)
  crop = lambda hw: _window(padded, hw, 2 * big_r + 1)
  return Samples(jax.vmap(crop)(anchors), jax.vmap(crop)(positives), real,
                 anchors, positives.astype(jnp.int32), accepted)


def sample_batch(key: jax.Array, canvas_: jax.Array, shapes: jax.Array,
                 config: CutsConfig) -> Samples:
  """`config.images_per_step` images drawn with replacement, each sampled by
  `sample_image` with its own key; fields `[B, S, ...]`."""
  k_pick, k_images = jax.random.split(key)
  picks = jax.random.randint(k_pick, (config.images_per_step,), 0, canvas_.shape[0])
  keys = jax.random.split(k_images, config.images_per_step)
  return jax.vmap(sample_image, (0, 0, 0, None))(keys, canvas_[picks], shapes[picks], config)
