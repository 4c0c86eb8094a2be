"""The registry of segmentation methods: a method is registered once, and every runner,
table, command line and benchmark reads it from here (named in `registry.grammar`).

A `Method` names a per-image core `core(key, image, config[, spacing]) -> Segmentation`
(written for ONE image `[*spatial, C_in]`; see `core.batching.EntryPoints`), its config
class and default, the tiny config of smoke runs and tests, and its title in tables:

    from sgscn_jax.registry import Method, register_method
    register_method(Method(name="my_method", title="My method", core=my_segment_image,
                           default_config=MyConfig(), quick_config=MyConfig(steps=2)))

after which `--method my_method` (experiments.segment), `--methods my_method`
(experiments.reproduce_tables) and `get_method("my_method").segment_batch(...)` work
(docs/ADDING_A_METHOD.md), in every form of the grammar (`registry.grammar`: `my_method:4`,
`my_method:steps=2`). `METHODS` is a read-only view; `register_method` is the way in.

A data-set method (CUTS) also names `fit(images, config, key) -> state`: the image runner
fits it once per run folder on the run's images (or `--fit_dir`), keeps the state in the
folder (`running.fitting`) and passes it to `segment_batch(..., state=state)`; a resume
loads the state instead of fitting again. A method without `fit` runs as before.

This module imports no method: the built-in ones (SGSCN, S3-Net, the baselines) are
registered by `sgscn_jax.builtin_methods`, which imports this module and every method, and
which the package's `__init__` imports, so that they are registered before any module of
`sgscn_jax`, this one included, is used.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.core.host import HostEntryPoints
from sgscn_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Method:
  """One segmentation method, as every runner and table sees it.

  Attributes:
    name: the command-line name (`--method NAME`), also the folder of its runs.
    title: its column title in tables ("SGSCN", "k-means").
    core: the pure per-image function (jittable), or a host function for `host=True`.
    default_config: the configuration of a full run (a frozen dataclass instance).
    quick_config: tiny settings for tests and smoke runs (seconds, not results).
    spacing: the core takes a physical pixel-size argument after the config.
    host: the core runs on the host (NumPy/scikit-image), not under `jax.jit`; it is
      called image by image (`HostEntryPoints`).
    description: one line for listings and docs.
    working_size: the working size `experiments.segment --size auto` gives this method
      (an int for the long side or `(h, w)`); None: the runner's default.
    make_entry_points: for a method that runs other registered methods (the vote of
      methods, `baselines.method_vote`): `make_entry_points(compiler_options or None)`
      gives its `segment_one` / `segment_batch`; None: `EntryPoints` or `HostEntryPoints`
      of `core`.
    members_config: for a method of other methods (the vote): builds its config from the
      members' `((name, config), ...)`; such a method is named `vote:A+B+C` (`MethodSpec`).
    plan_memory: `plan_memory(shape, c_in, config, *, spacing, factor, memory_limit,
      time_limit) -> volume.memory.Plan` for a method with its own memory model (JULE):
      the volume runner plans each volume with it before any starts, and it raises
      `MemoryBudgetError` naming settings that fit; None: SGSCN's plan, or a baseline on
      the voxels (not modelled).
    image_memory: `image_memory((h, w), c_in, config) -> bytes`, the estimated peak memory
      of one 2D image at that working shape, for a method with a memory model (SGSCN and
      S3-Net: `volume.memory.estimate_bytes`): the image runner refuses, before any runs, a
      working size over the memory budget and names sizes that fit; None: not checked.
    labels_are_object: the method's labels ARE its object (1 = object, 0 = the rest; distil):
      the image runner takes the object as `labels == 1`, cleaned (largest piece, holes
      filled; `running.scoring.labels_object`), instead of running the object step again.
  """
  name: str
  title: str
  core: Callable[..., Any]
  default_config: Any
  quick_config: Any
  spacing: bool = False
  host: bool = False
  description: str = ""
  working_size: Any = None
  make_entry_points: Optional[Callable[[Optional[Dict[str, Any]]], Any]] = None
  fit: Optional[Callable[..., Any]] = None
  plan_memory: Optional[Callable[..., Any]] = None
  members_config: Optional[Callable[[Tuple[Tuple[str, Any], ...]], Any]] = None
  image_memory: Optional[Callable[..., int]] = None
  labels_are_object: bool = False

  @property
  def config_type(self) -> type:
    return type(self.default_config)

  @property
  def kind(self) -> str:
    """What the runners do with it: "vote" (runs other methods, `members_config`), "fitted"
    (fitted on a data set first, `fit`), "host" (NumPy, image by image) or "jitted"."""
    if self.members_config is not None:
      return "vote"
    if self.fit is not None:
      return "fitted"
    return "host" if self.host else "jitted"

  @property
  def takes_k(self) -> bool:
    """Whether the method asks for a number of clusters (`name:k` on the command line)."""
    return any(f.name == "k" for f in dataclasses.fields(self.default_config))

  def entry_points(self, compiler_options: Optional[Dict[str, Any]] = None):
    """The checked, compiled `segment_one` / `segment_batch` (cached per compiler options)."""
    return _entry_points(self, tuple(sorted((compiler_options or {}).items())))

  def segment_one(self, key, image, config=None, **kwargs):
    return self.entry_points().segment_one(key, image, config or self.default_config, **kwargs)

  def segment_batch(self, keys, images, config=None, **kwargs):
    return self.entry_points().segment_batch(keys, images, config or self.default_config,
                                             **kwargs)


class FitContext(NamedTuple):
  """What the image runner tells a data-set method's `fit` besides the images, for a fit
  that needs it (`fit(images, config, key, context=FitContext(...))`; a `fit` without a
  `context` parameter is called without it).

  Attributes:
    ids: the fit images' ids, in the order of `images`.
    objects: the run's object step settings (`evaluation.objects.ObjectConfig`: the data
      set's prior), or None for a run without objects.
    out_dir: the run folder (a `Path`), where a fit may keep what it computes per image so
      that a resume does not compute it again; None outside a run.
    seed: the run's seed.
  """
  ids: Tuple[str, ...]
  objects: Any = None
  out_dir: Any = None
  seed: int = 0


def fit_method(method: "Method", images: Sequence[Any], config: Any, key: Any,
               context: Optional[FitContext] = None) -> Any:
  """`method.fit(images, config, key)`, with `context=` where the fit takes it."""
  import inspect
  if context is not None and "context" in inspect.signature(method.fit).parameters:
    return method.fit(images, config, key, context=context)
  return method.fit(images, config, key)


@functools.lru_cache(maxsize=None)
def _entry_points(method: Method, options: tuple):
  if method.make_entry_points is not None:
    return method.make_entry_points(dict(options) or None)
  if method.host:
    return HostEntryPoints(method.core, method.config_type)
  if not options and getattr(method, "_entry", None) is not None:
    return method._entry
  return EntryPoints(method.core, method.config_type, spacing=method.spacing,
                     compiler_options=dict(options) or None)


_METHODS: Dict[str, Method] = {}
METHODS = types.MappingProxyType(_METHODS)


def register_method(method: Method, *, entry: Optional[EntryPoints] = None,
                    overwrite: bool = False) -> Method:
  """Adds `method` to `METHODS`; `entry` reuses entry points the method's module already
  built (so the library's own `segment_one` and the registry share compiled programs)."""
  if not isinstance(method, Method):
    raise TypeError(f"expected a registry.Method, got {type(method).__name__}")
  if method.name in _METHODS and not overwrite:
    raise ValueError(f"method {method.name!r} is already registered")
  if ":" in method.name or "," in method.name:
    raise ValueError(f"method names may not contain ':' or ',', got {method.name!r}")
  if entry is not None:
    object.__setattr__(method, "_entry", entry)
  _METHODS[method.name] = method
  _entry_points.cache_clear()
  return method


class MethodSpecError(UserError, ValueError):
  """A method named in a way the grammar does not accept: one line naming the accepted
  forms (a `ValueError` too, so callers that catch bad values catch it)."""


ENTRY_POINT_GROUP = "sgscn_jax.methods"
_loaded_entry_points = []


def load_entry_points() -> Tuple[str, ...]:
  """Registers the methods that installed packages declare in the entry-point group
  `sgscn_jax.methods` (done once, on the first lookup the built-ins cannot answer, so a
  user's method reaches every command line without a launcher). An entry point names a
  module (importing it registers its methods), a `Method`, or a sequence of them:

      # the user's pyproject.toml
      [project.entry-points."sgscn_jax.methods"]
      position_kmeans = "my_methods"

  A module that fails to import is reported on stderr and skipped. Returns the entry points
  loaded by this call."""
  if _loaded_entry_points:
    return ()
  _loaded_entry_points.append(True)
  from importlib import metadata
  loaded = []
  for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
    try:
      value = entry.load()
    except Exception as e:  # noqa: BLE001 - a broken plug-in must not stop the built-ins
      print(f"warning: entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}) "
            f"failed to load: {type(e).__name__}: {e}", file=sys.stderr)
      continue
    for method in ([value] if isinstance(value, Method) else
                   value if isinstance(value, (list, tuple)) else []):
      if method.name not in _METHODS:
        register_method(method)
    loaded.append(entry.name)
  return tuple(loaded)


def import_methods_modules(names: Sequence[str]) -> None:
  """Imports each named module (`--methods_module my_methods`, found on `sys.path`, the
  current folder included), whose import registers its methods; one line for a module that
  cannot be imported."""
  import importlib
  if "" not in sys.path and "." not in sys.path:
    sys.path.insert(0, "")
  for name in names:
    if not name.strip():
      continue
    try:
      importlib.import_module(name.strip())
    except ImportError as e:
      raise MethodSpecError(f"--methods_module {name}: cannot import it ({e}); give a "
                            "module on the Python path, e.g. my_methods for ./my_methods.py")


def get_method(name: str) -> Method:
  """The registered method `name` (methods from installed packages' entry points included);
  a ValueError lists the names that exist.

  Examples:
    >>> from sgscn_jax import get_method
    >>> get_method("kmeans").title
    'k-means'
  """
  if name not in _METHODS:
    load_entry_points()
  try:
    return _METHODS[name]
  except KeyError:
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names())}") from None


def find_method(name: str) -> Optional[Method]:
  """The registered method `name`, or None (installed packages' entry points are loaded
  first when the name is not a built-in's)."""
  if name not in _METHODS:
    load_entry_points()
  return _METHODS.get(name)


def unregister_method(name: str) -> Optional[Method]:
  """Removes `name` from the registry (tests that register a method of their own and leave
  the registry as they found it); returns the method, or None."""
  _entry_points.cache_clear()
  return _METHODS.pop(name, None)


def config_with_options(config: Any, items: Sequence[str]) -> Any:
  """`config` (a frozen dataclass) with the fields named in `items` (`["name=value", ...]`)
  replaced, each value read as the type of the field's current value (a bool from
  1/true/yes); a ValueError names an unknown field or a malformed item. The command lines'
  `--method_options` (experiments.segment) and `--jule_options` (experiments.mni152)."""
  fields = {f.name for f in dataclasses.fields(config)}
  changes = {}
  for item in items:
    name, sep, text = item.partition("=")
    if not sep or name not in fields:
      raise ValueError(f"option {item!r}: expected NAME=VALUE with NAME one of "
                       f"{', '.join(sorted(fields))}")
    kind = type(getattr(config, name))
    changes[name] = (text.lower() in ("1", "true", "yes") if kind is bool else kind(text))
  return dataclasses.replace(config, **changes)


def method_names() -> tuple:
  """Every registered method's name, in registration order (the built-ins first, SGSCN
  first among them; then those of installed packages' entry points)."""
  load_entry_points()
  return tuple(_METHODS)
