"""Distil as a registered data-set method: `fit` (the teacher's objects on the fit images,
then the student trained on them), then each image segmented by the student.

    fit(images, config, key, *, context=None) -> state
      targets = teacher.teacher_targets(...)          the teacher's object and share per image
      x, y, share at S x S (bilinear; S = config.size), mean / std of x
      round r = 1..rounds: w = |2 share - 1| (or 1), params = train.train(x, y, w, ...)
        (key fold_in(key, 2 + r)); between rounds p = the student's dihedral-averaged
        probability on x, y = p > 1/2, share = p
      state = {"params": the last student's, "mean": [C], "std": [C],
               "loss": [rounds * steps, 3] (L, L_ce, L_dice)}

    segment_batch(keys, images [B, H, W, C], config, state=state) -> DistilSegmentation
      p = mean over the `tta` views of sigmoid(student(view(resize_S(x))))), each view
          undone, resized back to [H, W] (bilinear)
      object = p > threshold, its largest `keep_pieces` pieces, holes filled (scipy.ndimage)
      labels = object (1) / the rest (0); probability = p

The keys are not used (the student is deterministic). The fit's teacher key is
`fold_in(key, 1)`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from sgscn_jax import registry
from sgscn_jax.distil import losses, network, teacher, train
from sgscn_jax.distil.config import QUICK, DistilConfig

NAME = "distil"
TEACHER_DIR = "teacher"   # <run folder>/teacher/<teacher slug>/<image id>.npz

# The test-time views: (vertical flip, horizontal flip, quarter turns k); view(x) =
# rot90(flip(x), k), undone as flip(rot90(y, -k)).
VIEWS = {"none": ((False, False, 0),),
         "flips": ((False, False, 0), (True, False, 0), (False, True, 0), (True, True, 0)),
         "dihedral": tuple((v, False, k) for v in (False, True) for k in range(4))}


class DistilSegmentation(NamedTuple):
  """One image's result (a leading batch axis from `segment_batch`)."""
  labels: Any        # [H, W] int32: 1 on the object, 0 elsewhere
  n_labels: Any      # [] int32: 2, or 1 for an empty (or full) object
  iterations: Any    # [] int32: 0 (a forward pass)
  finite: Any        # [] bool: the probabilities are finite
  history: Any       # None
  probability: Any   # [H, W] float32 in [0, 1]: the student's (view-averaged) probability


class StateMissing(ValueError):
  """Distil segments with a fitted student; it was not given."""


def _view(x: jax.Array, view) -> jax.Array:
  flip_v, flip_h, k = view
  x = jnp.flip(x, 1) if flip_v else x
  x = jnp.flip(x, 2) if flip_h else x
  return jnp.rot90(x, k, axes=(1, 2))


def _unview(y: jax.Array, view) -> jax.Array:
  flip_v, flip_h, k = view
  y = jnp.rot90(y, -k, axes=(1, 2))
  y = jnp.flip(y, 2) if flip_h else y
  return jnp.flip(y, 1) if flip_v else y


@functools.partial(jax.jit, static_argnames=("size",))
def to_square(images: jax.Array, size: int) -> jax.Array:
  """`[B, H, W, K]` -> `[B, size, size, K]`, bilinear (anti-aliased when shrinking)."""
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "linear")


def predict(params, mean, std, images, config: DistilConfig, tta: str) -> jax.Array:
  """The student's probability `[B, H, W]` for images `[B, H, W, C]` in [0, 1]: resized to
  S x S, normalised, averaged over the `tta` views (each undone), resized back. One
  program per (S, width, depth, tta, shape), whatever the other settings."""
  return _predict(params, jnp.asarray(mean), jnp.asarray(std), jnp.asarray(images),
                  config.size, config.width, config.depth, tta)


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _predict(params, mean, std, images, size: int, width: int, depth: int, tta: str):
  b, h, w, _ = images.shape
  x = (to_square(images, size) - mean[None, None, None]) / std[None, None, None]
  views = VIEWS[tta]
  p = sum(_unview(jax.nn.sigmoid(network.apply(params, _view(x, v), width, depth)), v)
          for v in views) / len(views)
  return jax.image.resize(p, (b, h, w), "linear")


def clean(probability: np.ndarray, config: DistilConfig) -> np.ndarray:
  """The object `[H, W]` bool: probability > threshold, its `keep_pieces` largest pieces
  (8-connected; 0: all), holes filled (`fill_holes`), as the object step cleans."""
  mask = np.asarray(probability) > config.threshold
  if config.keep_pieces and mask.any():
    pieces, n = ndimage.label(mask, np.ones((3, 3), bool))
    if n > config.keep_pieces:
      sizes = np.bincount(pieces.ravel())[1:]
      keep = np.argsort(-sizes, kind="stable")[:config.keep_pieces] + 1
      mask = np.isin(pieces, keep)
  if config.fill_holes:
    mask = ndimage.binary_fill_holes(mask)
  return mask


def segment_batch(keys, images, config: DistilConfig, state=None, **unused) -> DistilSegmentation:
  """The student on `images` `[B, H, W, C]` float32 in [0, 1] (module docstring)."""
  del keys, unused
  _check(config)
  if state is None:
    raise StateMissing("distil: segmenting needs a fitted student (distil.method.fit, or a "
                       "run through experiments.segment, which fits it)")
  images = np.asarray(images, np.float32)
  if images.ndim != 4:
    raise ValueError(f"distil: expected a batch of 2D images [B, H, W, C], got {images.shape} "
                     "(volumes are not supported yet)")
  p = np.asarray(predict(state["params"], state["mean"], state["std"], images, config,
                         config.tta))
  finite = np.all(np.isfinite(p), axis=(1, 2))
  p = np.clip(np.nan_to_num(p), 0.0, 1.0).astype(np.float32)
  labels = np.stack([clean(q, config) for q in p]).astype(np.int32)
  n = np.array([len(np.unique(m)) for m in labels], np.int32)
  return DistilSegmentation(labels, n, np.zeros(len(p), np.int32), finite, None, p)


def fit(images: Sequence[np.ndarray], config: DistilConfig, key: jax.Array, *,
        context: Optional[registry.FitContext] = None, mesh=None, stream=None) -> dict:
  """The teacher's targets on `images` (each `[H, W, C]` float32 in [0, 1], shapes may
  differ), then the student trained on them (module docstring).

  Args:
    context: `registry.FitContext`: the fit images' ids, the data set's object prior (None:
      `ObjectConfig()`), the run folder, where the teacher's targets are kept under
      `teacher/` (None: nowhere); an optional `valid` (per image `[H, W]` bool or None, the
      field of view) is passed to the object step. None: ids "0", "1", ...
    mesh: the training mesh (`train.default_mesh()`: every device).

  Returns:
    The state: a nested dict of NumPy arrays.
  """
  _check(config)
  if not len(images):
    raise ValueError("distil: fit needs at least one image")
  images = [np.asarray(im, np.float32) for im in images]
  if any(im.ndim != 3 for im in images):
    raise ValueError("distil: fit takes 2D images [H, W, C] (volumes are not supported yet)")
  if len({im.shape[-1] for im in images}) != 1:
    raise ValueError("distil: the fit images have different channel counts")
  ids = ([str(i) for i in range(len(images))] if context is None or context.ids is None
         else [str(i) for i in context.ids])
  out_dir = None if context is None or context.out_dir is None else Path(context.out_dir)
  chosen = teacher.resolve_teacher(config.teacher, config.teacher_quick)
  targets = teacher.teacher_targets(
      images, chosen, None if context is None else context.objects, jax.random.fold_in(key, 1),
      ids=ids, seeds=config.teacher_seeds,
      out_dir=None if out_dir is None else out_dir / TEACHER_DIR,
      valid=getattr(context, "valid", None), stream=stream)
  x = np.concatenate([np.asarray(to_square(im[None], config.size)) for im in images])
  ts = np.concatenate([np.asarray(to_square(np.stack([t.mask, t.share], -1)[None].astype(
      np.float32), config.size)) for t in targets])
  y, share = ts[..., 0], ts[..., 1]
  mean, std = train.channel_statistics(x)
  history = []
  for r in range(config.rounds):
    weights = (np.asarray(losses.confidence_weight(share)) if config.confidence
               else np.ones_like(share))
    params, loss = train.train(x, y, weights, mean, std, config,
                               jax.random.fold_in(key, 2 + r), mesh=mesh, stream=stream,
                               label=f"distil round {r + 1}/{config.rounds}")
    history.append(loss)
    if r + 1 < config.rounds:
      share = np.concatenate([np.asarray(predict(params, mean, std, x[i:i + 8], config,
                                                 "dihedral")) for i in range(0, len(x), 8)])
      y = (share > 0.5).astype(np.float32)
  return {"params": params, "mean": mean, "std": std,
          "loss": np.concatenate(history).astype(np.float32)}


def _check(config) -> None:
  if not isinstance(config, DistilConfig):
    raise TypeError(f"expected a DistilConfig, got {type(config).__name__}")


class DistilEntryPoints:
  """`fit` / `segment_one` / `segment_batch` of distil (a jitted forward pass per batch)."""

  def __init__(self, compiler_options: Optional[dict] = None):
    del compiler_options

  fit = staticmethod(fit)

  def segment_batch(self, keys, images, config: DistilConfig, state=None, **kwargs):
    return segment_batch(keys, images, config, state=state, **kwargs)

  def segment_one(self, key, image, config: DistilConfig, state=None, **kwargs):
    batch = segment_batch(None, np.asarray(image)[None], config, state=state, **kwargs)
    return DistilSegmentation(*(None if f is None else f[0] for f in batch))


def segment_image(key, image, config: DistilConfig, state=None) -> DistilSegmentation:
  """The registry's `core`: the student on ONE image `[H, W, C]`."""
  return DistilEntryPoints().segment_one(key, image, config, state=state)


# registered by `sgscn_jax.builtin_methods`.
METHOD = registry.Method(
    name=NAME, title="distil", core=segment_image, default_config=DistilConfig(),
    quick_config=QUICK, make_entry_points=DistilEntryPoints, fit=fit, labels_are_object=True,
    description="a U-Net trained on the data set with a teacher's mask-free objects as "
                "targets, weighted by the teacher's confidence; one forward pass per image")
