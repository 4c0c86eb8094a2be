"""The teacher's targets: each fit image's mask-free object and the share of its runs that
hold each pixel.

A teacher is a registered method or a vote of methods, named with the project's method
grammar (`otsu_blue`, `kmeans:5`, `cuts`, `vote:sgscn+kmeans:5+otsu_blue`). On each image
it runs `teacher_seeds` times (run e with the key `fold_in(image key, e)`, the image key
`fold_in(key, crc32(image id))`), every label map it gives (the method's labels, or each of
a vote's members') goes through the object step with the data set's prior
(`evaluation.objects.extract_object`), and the R objects are voted
(`evaluation.consensus.vote_objects`, ties to the first):

    share(p) = |{r : object_r(p)}| / R,    target(p) = share(p) > 1/2

so one run of one method gives share = its object (the student's confidence weight
w = |2 share - 1| is then 1 everywhere). A data-set teacher (one with `fit`, CUTS) is
fitted on the fit images first (key `fold_in(key, FIT_SALT)`).

Resume: with an `out_dir`, each image's target is kept as `<out_dir>/<teacher slug>/<id>.npz`
(a run keeps them under `<run folder>/teacher/`)
(mask, share and the settings it was made with: teacher and its config, object prior and
object-step version, seeds, key, image digest); a later fit reuses every file whose
settings match and runs the teacher only on the others.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zlib
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence

import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.data import files
from sgscn_jax.evaluation import consensus, objects

FIT_SALT = 0x7EA   # a data-set teacher's fit key: fold_in(key, FIT_SALT)
CHUNK = 8          # images of one shape per teacher call


class Teacher(NamedTuple):
  method: Any   # the registered `registry.Method`
  config: Any   # its config (a `VoteConfig` for a vote)
  slug: str     # its folder name: `otsu_blue`, `kmeans_k5`, `vote_sgscn+kmeans_k5+otsu_blue`


class Target(NamedTuple):
  mask: np.ndarray    # [H, W] bool: the teacher's (voted) object
  share: np.ndarray   # [H, W] float32 in [0, 1]: share of the teacher's runs holding p


def resolve_teacher(spec: str, quick: bool = False) -> Teacher:
  """The teacher named by `spec` in the registry's grammar (`registry.parse_method`), each
  method with its default config (quick: its quick config) and the options the spec sets;
  a `ValueError` names what is wrong."""
  parsed = registry.parse_method(spec)
  names = [parsed.name] + [m.name for m in parsed.members]
  if "distil" in names:
    raise ValueError(f"distil: teacher {spec!r}: the student cannot teach itself")
  return Teacher(parsed.method, parsed.config(quick=quick), parsed.slug)


def image_key(key: jax.Array, image_id: str) -> jax.Array:
  """`fold_in(key, crc32(id))`: an image's key does not depend on the fit set's order."""
  return jax.random.fold_in(key, zlib.crc32(image_id.encode()) & 0x7FFFFFFF)


def target_path(out_dir: Path, teacher: Teacher, image_id: str) -> Path:
  safe = image_id.replace("/", "__").replace("\\", "__")
  return Path(out_dir) / teacher.slug / f"{safe}.npz"


def _settings(teacher: Teacher, prior: objects.ObjectConfig, seeds: int, key: jax.Array,
              image: np.ndarray) -> dict:
  return {"teacher": teacher.slug, "teacher_config": repr(teacher.config),
          "objects": objects.config_tag(prior), "object_profile": prior.profile,
          "object_version": objects.VERSION, "seeds": seeds,
          "key": np.asarray(jax.random.key_data(key)).ravel().tolist(),
          "shape": list(image.shape),
          "image_sha1": hashlib.sha1(np.ascontiguousarray(image, np.float32)).hexdigest()}


def _load(path: Path, settings: dict) -> Optional[Target]:
  if not path.exists():
    return None
  try:
    with np.load(path) as data:
      if json.loads(str(data["settings"])) != settings:
        return None
      return Target(data["mask"].astype(bool), data["share"].astype(np.float32))
  except (OSError, ValueError, KeyError):
    return None


def _save(path: Path, target: Target, settings: dict) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, mask=target.mask.astype(np.uint8), share=target.share,
                      settings=np.array(json.dumps(settings, sort_keys=True)))
  files.atomic_write_bytes(path, buffer.getvalue())


def label_maps(teacher: Teacher, keys: jax.Array, images: np.ndarray,
               state: Any = None) -> List[np.ndarray]:
  """Each image's label maps `[M, H, W]` from one teacher call on `images` `[B, H, W, C]`
  (a vote: its M members' maps; else M = 1, the method's labels)."""
  kwargs = {} if state is None else {"state": state}
  result = jax.device_get(teacher.method.segment_batch(keys, images, teacher.config, **kwargs))
  members = getattr(result, "members", None)
  if members is not None:
    return [np.asarray(m) for m in members]
  return [np.asarray(labels)[None] for labels in result.labels]


def vote(maps: np.ndarray, image: np.ndarray, prior: objects.ObjectConfig,
         valid: Optional[np.ndarray] = None) -> Target:
  """The object of each label map of `maps` `[R, H, W]` and their vote (module docstring)."""
  masks = np.stack([objects.extract_object(m, image, prior, valid=valid).mask for m in maps])
  voted = consensus.vote_objects(masks, tie=masks[0])
  return Target(voted.mask, voted.share)


def teacher_targets(images: Sequence[np.ndarray], teacher: Teacher,
                    prior: Optional[objects.ObjectConfig], key: jax.Array, *,
                    ids: Sequence[str], seeds: int = 1, out_dir: Optional[Path] = None,
                    valid: Optional[Sequence[Optional[np.ndarray]]] = None,
                    stream=None) -> List[Target]:
  """The teacher's `Target` of every image of `images` (each `[H, W, C]`), reusing the
  matching files of `out_dir` and writing the new ones there (module docstring)."""
  prior = objects.ObjectConfig() if prior is None else prior
  valid = [None] * len(images) if valid is None else list(valid)
  if not len(ids) == len(valid) == len(images):
    raise ValueError(f"distil: {len(images)} images but {len(ids)} ids, {len(valid)} masks")
  keys = [image_key(key, i) for i in ids]
  settings = [_settings(teacher, prior, seeds, k, np.asarray(im)) for k, im in zip(keys, images)]
  paths = [None if out_dir is None else target_path(out_dir, teacher, i) for i in ids]
  found: List[Optional[Target]] = [None if p is None else _load(p, s)
                                   for p, s in zip(paths, settings)]
  pending = [i for i, t in enumerate(found) if t is None]
  if not pending:
    return found
  out = stream or sys.stderr
  print(f"distil: teacher {teacher.slug} on {len(pending)} of {len(images)} images"
        + (f" ({len(images) - len(pending)} reused from {out_dir})"
           if len(pending) < len(images) else ""), file=out, flush=True)
  state = None
  if teacher.method.fit is not None:
    state = teacher.method.fit([np.asarray(im, np.float32) for im in images], teacher.config,
                               jax.random.fold_in(key, FIT_SALT))
  by_shape: dict = {}
  for i in pending:
    by_shape.setdefault(np.shape(images[i]), []).append(i)
  for group in by_shape.values():
    for start in range(0, len(group), CHUNK):
      chunk = group[start:start + CHUNK]
      batch = np.stack([np.asarray(images[i], np.float32) for i in chunk])
      runs = [label_maps(teacher, jax.numpy.stack([jax.random.fold_in(keys[i], e)
                                                   for i in chunk]), batch, state)
              for e in range(seeds)]
      for b, i in enumerate(chunk):
        maps = np.concatenate([run[b] for run in runs])
        found[i] = vote(maps, batch[b], prior, valid[i])
        if paths[i] is not None:
          _save(paths[i], found[i], settings[i])
  return found
