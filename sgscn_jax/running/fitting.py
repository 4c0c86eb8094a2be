"""The fitted state of a data-set method (`registry.Method.fit`, e.g. CUTS) in a run folder.

    out/fitted/<method>_state.npz    the state: a nested dict of arrays, keys joined by "/"
    out/fitted/<method>_state.json   what it was fitted with: method, config, seed, the fit
                                     images (ids and working shapes), --fit_dir, seconds

`load_or_fit` fits once per folder: a resume (the same command again) loads the state and
fits nothing; a state fitted with other settings (config, seed, images, fit folder) is
refused with one line (`folder.RunFolderError`), or fitted again with `overwrite`. The
fit's key is `fold_in(key(seed), FIT_SALT)`, so each seed of a table fits its own state.

`load_fitted` reuses another run's state on new images without fitting
(`RunOptions.fitted_from`, `experiments.segment --fitted_from RUN_DIR`): the state is
refused with one line when its method or fit settings (the config's `fit_settings()`)
differ from this run's; a copy of it, its record naming where it came from, is kept in this
run's `fitted/`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.data import files
from sgscn_jax.running.folder import RunFolderError

FITTED_DIR = "fitted"
FIT_SALT = 0xF17   # the fit's key: fold_in(key(seed), FIT_SALT)


def state_paths(out: Path, name: str) -> Tuple[Path, Path]:
  base = Path(out) / FITTED_DIR / f"{name}_state"
  return base.with_suffix(".npz"), base.with_suffix(".json")


def flatten(state: Dict[str, Any], prefix: str = "") -> Dict[str, np.ndarray]:
  """`{"a": {"b": x}}` -> `{"a/b": x}` (arrays as NumPy)."""
  out: Dict[str, np.ndarray] = {}
  for key, value in state.items():
    name = f"{prefix}/{key}" if prefix else str(key)
    if isinstance(value, dict):
      out.update(flatten(value, name))
    else:
      out[name] = np.asarray(value)
  return out


def unflatten(flat: Dict[str, np.ndarray]) -> Dict[str, Any]:
  """The inverse of `flatten`."""
  out: Dict[str, Any] = {}
  for name, value in flat.items():
    node = out
    *parents, leaf = name.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return out


def save_state(path: Path, state: Dict[str, Any]) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **flatten(state))
  files.atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> Dict[str, Any]:
  with np.load(path) as data:
    return unflatten({k: data[k] for k in data.files})


def fit_settings(name: str, config: Any, seed: int, ids: Sequence[str],
                 shapes: Sequence[Sequence[int]], fit_dir: Optional[str]) -> Dict[str, Any]:
  """The settings a fitted state depends on, JSON form: the config's `fit_settings()` where
  it has one (CUTS: the encoder and fit fields, not the per-image ones), else all of it."""
  fields = (config.fit_settings() if hasattr(config, "fit_settings")
            else dataclasses.asdict(config))
  return json.loads(files.json_text({
      "method": name, "config": fields, "seed": seed,
      "fit_dir": fit_dir, "images": list(ids), "shapes": [list(s[:2]) for s in shapes]}))


class RunFitContext(NamedTuple):
  """`registry.FitContext`'s fields and `valid`: per fit image its valid region (a scan
  region, a field of view) `[h, w]` bool at the working shape, or None; a fit reads it as
  `getattr(context, "valid", None)` (distil's teacher passes it to the object step)."""
  ids: Tuple[str, ...]
  objects: Any = None
  out_dir: Any = None
  seed: int = 0
  valid: Any = None


def load_or_fit(method: registry.Method, config: Any,
                images: Callable[[], Tuple[Sequence[str], list]], out: Path, seed: int, *,
                fit_dir: Optional[str] = None, overwrite: bool = False,
                objects: Any = None) -> Dict[str, Any]:
  """The state of `method` (a `registry.Method` with `fit`) for this run folder.

  The fit is `registry.fit_method(method, images, config, key, registry.FitContext(ids,
  objects, out, seed))`: a fit with a `context` parameter is told the images' ids, the
  run's object settings, the run folder and the seed.

  Args:
    images: called only when the state must be checked or fitted: `(ids, [H, W, C] arrays)`,
      the fit images at their working size, or `(ids, arrays, valid regions)` (each
      `[H, W]` bool or None; the fit's context is then a `RunFitContext`).
    out, seed: the run folder and the run's seed.
    fit_dir: recorded (the images come from it instead of the run's cases).
    overwrite: fit again when the saved state was fitted with other settings.
    objects: the run's object step settings (`evaluation.objects.ObjectConfig`) or None.

  Raises:
    RunFolderError: a saved state fitted with other settings, without `overwrite`.
  """
  npz, meta = state_paths(out, method.name)
  ids, arrays, *valid = images()
  now = fit_settings(method.name, config, seed, ids, [a.shape for a in arrays], fit_dir)
  if npz.exists() and meta.exists():
    saved = json.loads(meta.read_text())
    old = {k: saved.get(k) for k in now}
    if old == now:
      print(f"{method.name}: reusing the fitted state {npz} (fitted in "
            f"{saved.get('fit_seconds', '?')} s on {len(ids)} images)", file=sys.stderr)
      return load_state(npz)
    changed = [k for k in now if old.get(k) != now[k]]
    if not overwrite:
      raise RunFolderError(f"{npz} was fitted with other settings ({', '.join(changed)}); use "
                           "a new --out_dir, or --overwrite to fit again")
    print(f"--overwrite: fitting {method.name} again ({', '.join(changed)} changed)",
          file=sys.stderr)
  print(f"{method.name}: fitting on {len(ids)} images -> {npz}", file=sys.stderr)
  start = time.perf_counter()
  context = registry.FitContext(tuple(ids), objects, Path(out), seed)
  if valid and any(v is not None for v in valid[0]):
    context = RunFitContext(*context, valid=list(valid[0]))
  state = registry.fit_method(method, arrays, config,
                              jax.random.fold_in(jax.random.key(seed), FIT_SALT), context)
  seconds = time.perf_counter() - start
  save_state(npz, state)
  files.write_json(meta, dict(now, fit_seconds=round(seconds, 2),
                              fitted=time.strftime("%Y-%m-%dT%H:%M:%S")))
  return state


def load_fitted(method: registry.Method, config: Any, run_dir: Path,
                out: Optional[Path] = None) -> Dict[str, Any]:
  """The state another run fitted (`<run_dir>/fitted/<method>_state.npz`), for this run's
  `config` without fitting; with `out`, copied into `<out>/fitted/` with its record and
  `fitted_from`.

  Raises:
    RunFolderError: no state of `method` in `run_dir`, or one fitted with another method
      or other fit settings (one line naming the fields that differ).
  """
  npz, meta = state_paths(Path(run_dir), method.name)
  if not (npz.exists() and meta.exists()):
    raise RunFolderError(f"--fitted_from {run_dir}: no fitted {method.name} state there "
                         f"({npz} and its .json); name the folder of a finished "
                         f"{method.name} run")
  saved = json.loads(meta.read_text())
  now = fit_settings(method.name, config, 0, (), (), None)
  old = {"method": saved.get("method"), "config": saved.get("config") or {}}
  if old["method"] != now["method"]:
    raise RunFolderError(f"--fitted_from {run_dir}: its state is {old['method']}'s, not "
                         f"{method.name}'s")
  changed = [f"{k} {old['config'].get(k)!r} -> {v!r}" for k, v in now["config"].items()
             if old["config"].get(k) != v]
  changed += [f"{k} {v!r} -> (none)" for k, v in old["config"].items()
              if k not in now["config"]]
  if changed:
    raise RunFolderError(f"--fitted_from {run_dir}: its state was fitted with other settings "
                         f"({'; '.join(changed)}); use the same fit settings or fit anew")
  state = load_state(npz)
  if out is not None:
    here_npz, here_meta = state_paths(Path(out), method.name)
    if not here_npz.exists() or here_npz.read_bytes() != npz.read_bytes():
      files.atomic_write_bytes(here_npz, npz.read_bytes())
    files.write_json(here_meta, dict(saved, fitted_from=str(run_dir)))
  print(f"{method.name}: the state fitted in {run_dir} on {len(saved.get('images', []))} "
        "images, not fitted again", file=sys.stderr)
  return state


def fit_info(out: Path, name: str) -> Optional[Dict[str, Any]]:
  """The saved `<name>_state.json` of `out`, or None."""
  meta = state_paths(out, name)[1]
  return json.loads(meta.read_text()) if meta.exists() else None
