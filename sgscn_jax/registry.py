"""The one registry of segmentation methods: a method is registered once, and every runner,
table, command line and benchmark reads it from here.

A `Method` names a per-image core `core(key, image, config[, spacing]) -> Segmentation`
(written for ONE image `[*spatial, C_in]`; see `core.batching.EntryPoints`), its config
class and default, the tiny config of smoke runs and tests, and its title in tables:

    from sgscn_jax.registry import Method, register_method
    register_method(Method(name="my_method", title="My method", core=my_segment_image,
                           default_config=MyConfig(), quick_config=MyConfig(steps=2)))

after which `--method my_method` (experiments.segment), `--methods my_method`
(experiments.reproduce_tables) and `get_method("my_method").segment_batch(...)` work
(docs/ADDING_A_METHOD.md). A method whose config has a field `k` takes `name:k` in
`--methods` (e.g. `kmeans:3`). `METHODS` is a read-only view; `register_method` is the way in.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any, Callable, Dict, Optional

from sgscn_jax.core import batching
from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import segment_image


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

  @property
  def config_type(self) -> type:
    return type(self.default_config)

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


@functools.lru_cache(maxsize=None)
def _entry_points(method: Method, options: tuple):
  if method.host:
    from sgscn_jax.baselines.host import HostEntryPoints
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


def _load_builtins() -> None:
  import sgscn_jax.baselines  # noqa: F401 - the baselines register themselves on import


def get_method(name: str) -> Method:
  """The registered method `name`; a ValueError lists the names that exist."""
  _load_builtins()
  try:
    return _METHODS[name]
  except KeyError:
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names())}") from None


def method_names() -> tuple:
  """Every registered method's name, SGSCN first, then in registration order."""
  _load_builtins()
  return tuple(_METHODS)


register_method(Method(
    name="sgscn", title="SGSCN", core=segment_image, default_config=Config(),
    quick_config=Config(n_channels=8, iterations=2), spacing=True,
    description="a CNN trained on the image alone (Ahn et al., MICCAI 2021)"),
    entry=batching.SGSCN)


# S3-Net's published settings (Karimijafarbigloo et al., ICCV 2023 workshop; REFERENCE.md
# section 3; docs/S3NET.md): 256x256 working size (`working_size`), 3.5 L_ce + 0.2 L_AT +
# 4 L_S, SGD lr 0.2 (the poster says 0.36), 50 iterations. Our choices where the paper is
# silent: 100 channels, one I-LKA block, momentum 0.9 and the min_labels = 3 early stop of
# the Kim et al. / SGSCN code it builds on, L_AT as the symmetric-KL variant.
S3NET_WEIGHTS = (("cross_entropy", 3.5), ("transform_consistency_kl", 0.2),
                 ("edge_aware_spatial", 4.0))
S3NET_CONFIG = Config(architecture="s3net", n_channels=100, n_conv=1, learning_rate=0.2,
                      momentum=0.9, iterations=50, loss_weights=S3NET_WEIGHTS)

register_method(Method(
    name="s3net", title="S3-Net", core=segment_image, default_config=S3NET_CONFIG,
    quick_config=dataclasses.replace(S3NET_CONFIG, n_channels=8, iterations=2), spacing=True,
    working_size=(256, 256),
    description="S3-Net's network and losses, with L_S and L_AT made to work "
                "(Karimijafarbigloo et al., ICCV 2023 workshop)"),
    entry=batching.SGSCN)
