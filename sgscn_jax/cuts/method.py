"""CUTS as a registered data-set method: `fit` on a set of images, then each image segmented
with the fitted state (`registry.Method.fit`; the image runner fits once per run folder and
keeps the state in `fitted/`, `running.fitting`).

Per image: embeddings z = encoder(normalised image) `[H, W, L]` (one jitted call), a
subsample of `subsample` pixels drawn with the image's key, their diffusion condensation
(`condensation.condense`), the levels of 2..`max_clusters` clusters (coarse to fine), every
pixel labelled as its nearest subsampled pixel at every level, and the mask-free level by
`level_rule` ("finest": the finest level kept; "persistent": the level lasting the most
condensation steps). The result's
`labels` are that level's; `levels` holds them all (the runner scores the oracle level).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sgscn_jax import registry
from sgscn_jax.core.loop import check_image
from sgscn_jax.cuts import condensation, encoder
from sgscn_jax.cuts import fit as fitting
from sgscn_jax.cuts.config import QUICK, CutsConfig

NAME = "cuts"


class CutsSegmentation(NamedTuple):
  """One image's result (a leading batch axis from `segment_batch`)."""
  labels: Any            # [H, W] int32: the mask-free level's labels, 0..K-1
  n_labels: Any          # [] int32
  iterations: Any        # [] int32: condensation steps
  finite: Any            # [] bool: finite embeddings
  history: Any           # None
  levels: Any            # [V_max, H, W] int32, coarse to fine; rows >= n_levels repeat the last
  level_clusters: Any    # [V_max] int32 clusters of each level (0: padding)
  level_persistence: Any  # [V_max] int32 steps each level lasted (0: padding)
  n_levels: Any          # [] int32
  level: Any             # [] int32: the index of the mask-free level in `levels`


class StateMissing(ValueError):
  """CUTS segments with a fitted state; it was not given."""


@functools.partial(jax.jit, static_argnames=("config",))
def embed(params, mean, std, image, config: CutsConfig) -> jax.Array:
  """Embeddings `[H, W, L]` of ONE image `[H, W, C]` in the runner's units (normalised by
  the fit's channel statistics first)."""
  return encoder.embed_image(params, (image - mean[None, None]) / std[None, None], config)


def subsample_indices(key: jax.Array, n_pixels: int, count: int) -> np.ndarray:
  """`min(count, n_pixels)` distinct pixel indices drawn with `key`, sorted."""
  if count >= n_pixels:
    return np.arange(n_pixels)
  return np.sort(np.asarray(jax.random.choice(key, n_pixels, (count,), replace=False)))


def segment_image(key: jax.Array, image, config: CutsConfig, state) -> CutsSegmentation:
  """CUTS on ONE image `[H, W, C]` float32 with the fitted `state` (module docstring)."""
  if state is None:
    raise StateMissing("cuts: segmenting needs the state of a fit (cuts.fit.fit, or run it "
                       "through experiments.segment / reproduce_tables, which fit it)")
  check_image(image)
  h, w = np.shape(image)[:2]
  z = np.asarray(embed(state["params"], jnp.asarray(state["mean"]), jnp.asarray(state["std"]),
                       jnp.asarray(image, jnp.float32), config)).reshape(h * w, -1)
  finite = bool(np.all(np.isfinite(z)))
  z = np.nan_to_num(z)
  picks = subsample_indices(key, h * w, config.subsample)
  cond = condensation.condense(z[picks], knn=config.knn, growth=config.bandwidth_growth,
                               merge_distance=config.merge_distance,
                               max_steps=config.max_condensation_steps)
  lv = condensation.levels(cond, max_clusters=config.max_clusters, max_levels=config.max_levels)
  nearest = condensation.nearest_points(z, z[picks])
  v = len(lv.n_clusters)
  if v == 0:   # never between 2 and max_clusters clusters: the finest partition recorded
    lv = condensation.Levels(cond.labels[:1], cond.n_clusters[:1], np.ones(1, np.int64))
    v = 1
  maps = lv.labels[:, nearest].reshape(v, h, w).astype(np.int32)
  chosen = v - 1 if config.level_rule == "finest" else condensation.persistent_level(lv)
  pad = config.max_levels - v
  levels = np.concatenate([maps, np.repeat(maps[-1:], pad, 0)])
  clusters = np.concatenate([lv.n_clusters, np.zeros(pad, np.int64)]).astype(np.int32)
  persistence = np.concatenate([lv.persistence, np.zeros(pad, np.int64)]).astype(np.int32)
  labels = np.unique(maps[chosen], return_inverse=True)[1].reshape(h, w).astype(np.int32)
  return CutsSegmentation(labels, np.int32(labels.max() + 1), np.int32(len(cond.n_clusters) - 1),
                          np.bool_(finite), None, levels, clusters, persistence, np.int32(v),
                          np.int32(chosen))


class CutsEntryPoints:
  """`fit` / `segment_one` / `segment_batch` of CUTS (images one after the other on the
  host; the encoder's forward pass is one jitted call per image shape)."""

  def __init__(self, compiler_options: Optional[dict] = None):
    del compiler_options   # the encoder is small; the default compiler settings are used

  @staticmethod
  def fit(images, config: CutsConfig, key, **kwargs):
    _check_config(config)
    return fitting.fit(images, config, key, **kwargs)

  def segment_one(self, key, image, config: CutsConfig, state=None, **unused):
    _check_config(config)
    return segment_image(key, np.asarray(image, np.float32), config, state)

  def segment_batch(self, keys, images, config: CutsConfig, state=None, **unused):
    """Each image of `images` `[B, H, W, C]` with its key; fields stacked `[B, ...]`."""
    _check_config(config)
    if len(keys) != np.shape(images)[0]:
      raise ValueError(f"keys: expected {np.shape(images)[0]} keys, got {len(keys)}")
    out = [segment_image(keys[b], np.asarray(images[b], np.float32), config, state)
           for b in range(np.shape(images)[0])]
    return CutsSegmentation(*(None if f[0] is None else np.stack(f) for f in zip(*out)))


def _check_config(config) -> None:
  if not isinstance(config, CutsConfig):
    raise TypeError(f"expected a CutsConfig, got {type(config).__name__}")


def fit(images, config: CutsConfig, key, **kwargs):
  """The registry's `fit`: `fit.fit` (the encoder fitted on `images`).

  Args:
    images: the data set's images, each `[H, W, C]` float32 (sizes may differ).
    config: a `CutsConfig`.
    key: the fit's PRNG key.
    **kwargs: `fit.fit`'s options (`show_progress`, `stream`).

  Returns:
    The fitted state (a dict of NumPy arrays, `fit` module docstring), for `segment_one` /
    `segment_batch`'s `state`.

  Examples:
    Fit CUTS on two images (the tiny `quick_config`: a smoke test, not a result), then
    segment one of them with the fitted state:

    >>> import jax
    >>> from sgscn_jax import get_method
    >>> from sgscn_jax.data import lesion_image
    >>> cuts = get_method("cuts")
    >>> images = [lesion_image(i, (32, 32))[0] for i in range(2)]
    >>> state = cuts.fit(images, cuts.quick_config, jax.random.key(0), show_progress=False)
    >>> state["loss"].shape              # [steps, 3]: total, contrastive, reconstruction
    (4, 3)
    >>> result = cuts.segment_one(jax.random.key(1), images[0], cuts.quick_config, state=state)
    >>> result.labels.shape, int(result.n_levels) >= 1
    ((32, 32), True)
  """
  return CutsEntryPoints.fit(images, config, key, **kwargs)


# registered by `sgscn_jax.builtin_methods`.
METHOD = registry.Method(
    name=NAME, title="CUTS", core=segment_image, default_config=CutsConfig(),
    quick_config=QUICK, make_entry_points=CutsEntryPoints, fit=fit,
    description="an encoder fitted on the data set (contrastive + patch reconstruction), then "
                "diffusion condensation per image (Liu et al., MICCAI 2024)")
