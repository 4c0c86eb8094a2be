"""Batching in one place: every method's per-image core, jitted and mapped over a batch.

A method is one pure function `core(key, image, config[, spacing]) -> Segmentation` written
for ONE image `[*spatial, C_in]` and one PRNG key, with `config` a frozen dataclass (static).
`EntryPoints(core, config_type)` compiles it, once each per (config, shape), as

    one         jit(core)                                    one image
    vmap        jit(vmap(core, in_axes=(0, 0, None[, 0])))   [B] keys, [B, *spatial, C_in]
    chunked     jit(lax.map(core, batch_size=chunk))          vmapped chunks, one after another
    sequential  jit(lax.map(core))                           the images one after the other

and checks inputs on the host before calling them (`loop.check_image` per image, one key
per image, the config's type). SGSCN's `segment_one` / `segment_batch` and every baseline's
are these entry points; the data-set runner calls any of them the same way.

Which batching: "sequential" on CPU, where vmapping independent optimisations measured
about 2x slower per image (docs/PERFORMANCE.md: grouped convolutions), "vmap" on
accelerators, in chunks sized from free memory (`auto_chunk_size`). With a device `mesh`
the batch is split over devices first (`sharding.segment_sharded`).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sgscn_jax.core import sharding
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import (Segmentation, as_key, check_image, check_spacing,  # noqa: F401
                                 image_keys, segment_image)

Core = Callable[..., Segmentation]
BATCHINGS = ("vmap", "sequential")


def host_available_bytes() -> int:
  """Memory available to a new process now: /proc/meminfo MemAvailable, else
  `os.sysconf('SC_AVPHYS_PAGES') * SC_PAGE_SIZE`."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_bytes(device=None) -> int:
  """Memory free for a new program: the accelerator's free memory, or (CPU) the host's
  `host_available_bytes()`."""
  device = device or jax.devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  return int(host_available_bytes())


def default_batching() -> str:
  """"vmap" on accelerators; "sequential" (`lax.map`, one image after the other inside one
  program) on CPU, where vmapping independent optimisations measured ~2x slower per image
  (docs/PERFORMANCE.md)."""
  return "sequential" if jax.default_backend() == "cpu" else "vmap"


class EntryPoints:
  """The checked, jitted single-image and batch functions of one method's `core`."""

  def __init__(self, core: Core, config_type: type, *, spacing: bool = False,
               compiler_options: Dict[str, object] | None = None):
    """Args:
      core: `core(key, image, config)` (or `core(key, image, config, spacing)` when
        `spacing` is true) for one image.
      config_type: the method's frozen config class (checked at every call).
      spacing: the core takes a physical pixel-size argument (SGSCN's L_cc).
      compiler_options: passed to every `jax.jit` (e.g. `{"xla_backend_optimization_level":
        0}` halves XLA:CPU compile time and doubles or triples run time: for tests).
    """
    self.core, self.config_type, self.takes_spacing = core, config_type, spacing
    jit = functools.partial(jax.jit, static_argnums=2, compiler_options=compiler_options)
    if spacing:
      self.one = jit(core)
      self.vmap = jit(jax.vmap(core, in_axes=(0, 0, None, 0)))
      self.sequential = jit(lambda keys, images, config, s=None: lax.map(
          lambda a: core(a[0], a[1], config, a[2]), (keys, images, s)))
      self.chunked = jax.jit(lambda keys, images, config, chunk, s=None: lax.map(
          lambda a: core(a[0], a[1], config, a[2]), (keys, images, s), batch_size=chunk),
                             static_argnums=(2, 3), compiler_options=compiler_options)
    else:
      self.one = jit(lambda key, image, config, s=None: core(key, image, config))
      self.vmap = jit(lambda keys, images, config, s=None: jax.vmap(
          core, in_axes=(0, 0, None))(keys, images, config))
      self.sequential = jit(lambda keys, images, config, s=None: lax.map(
          lambda a: core(a[0], a[1], config), (keys, images)))
      self.chunked = jax.jit(lambda keys, images, config, chunk, s=None: lax.map(
          lambda a: core(a[0], a[1], config), (keys, images), batch_size=chunk),
                             static_argnums=(2, 3), compiler_options=compiler_options)

  def _check_config(self, config) -> None:
    if not isinstance(config, self.config_type):
      raise TypeError(f"expected a {self.config_type.__name__}, got {type(config).__name__}")

  def _spacing(self, spacing, rank: int, n: Optional[int] = None):
    if spacing is None:
      return None
    if not self.takes_spacing:
      raise ValueError("this method takes no spacing")
    if n is None:
      return check_spacing(spacing, rank)
    per_image = np.broadcast_to(np.asarray(spacing, np.float64), (n, rank)) if (
        np.ndim(spacing) == 1) else np.asarray(spacing, np.float64)
    if per_image.shape != (n, rank):
      raise ValueError(f"spacing: expected [{rank}] or [{n}, {rank}], "
                       f"got shape {np.shape(spacing)}")
    return jnp.stack([check_spacing(s, rank, name=f"spacing[{b}]")
                      for b, s in enumerate(per_image)])

  def segment_one(self, key, image, config, *, spacing=None) -> Segmentation:
    """The method on one image `[*spatial, C_in]` (checked, jitted)."""
    self._check_config(config)
    check_image(image)
    spacing = self._spacing(spacing, np.ndim(image) - 1)
    return self.one(as_key(key), jnp.asarray(image, jnp.float32), config, spacing)

  def compile_one(self, image_shape: tuple, config):
    """The compiled single-image program for `image_shape` `(*spatial, C_in)`, not run:
    for memory analysis (`image_peak_bytes`) and timing compile separately from running.
    Call it as `compiled(key, image, None)` (the last argument is the spacing)."""
    key = jax.eval_shape(lambda: jax.random.key(0))
    image = jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32)
    return self.one.lower(key, image, config, None).compile()

  def image_peak_bytes(self, image_shape: tuple, config) -> int:
    """Working memory of one image's whole run, from XLA's own buffer assignment: the
    compiled program's temporary plus argument and output bytes."""
    return _peak_bytes(self, tuple(image_shape), config)

  def segment_batch(self, keys, images, config, *, batching: str | None = None,
                    chunk_size: int | None = None, spacing=None, mesh=None) -> Segmentation:
    """The method on each of `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit.

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
        chunk after the other (`lax.map(..., batch_size=chunk_size)`): the memory of a
        chunk, not of the batch. None: `auto_chunk_size` from the image size and the
        memory available (the whole batch when it fits). Ignored by "sequential".
      spacing: optional physical pixel size per spatial axis, `[r]` (shared by every
        image) or `[B, r]`, for methods that take one.
      mesh: None (one program on the default device) or a 1-D device mesh
        (`sharding.batch_mesh()`): the batch is split over its devices, each running the
        chosen batching on its own `B / n` images with no communication; B must be a
        multiple of the device count.
    """
    self._check_config(config)
    shape = tuple(np.shape(images))
    if len(shape) < 1:
      raise ValueError(f"images: expected [B, *spatial, C_in], got shape {shape}")
    for b in range(shape[0]):
      check_image(images[b], name=f"images[{b}]")
    keys = as_key(keys)
    if keys.shape != (shape[0],):
      raise ValueError(f"keys: expected {shape[0]} keys (one per image), "
                       f"got key shape {keys.shape}")
    batching = batching or default_batching()
    if batching not in BATCHINGS:
      raise ValueError(f"batching must be 'vmap' or 'sequential', got {batching!r}")
    spacing = self._spacing(spacing, len(shape) - 2, shape[0])
    images = jnp.asarray(images, jnp.float32)
    if mesh is not None:
      if spacing is not None:
        raise ValueError("segment_batch: spacing with a device mesh is not supported yet; "
                         "run volumes' slices without mesh=")
      fn = self.vmap if batching == "vmap" else self.sequential
      return sharding.segment_sharded(fn, keys, images, config, mesh)
    if batching == "sequential":
      return self.sequential(keys, images, config, spacing)
    if chunk_size is None:
      chunk_size = self.auto_chunk_size(shape[1:], shape[0], config)
    if chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if chunk_size >= shape[0]:
      return self.vmap(keys, images, config, spacing)
    return self.chunked(keys, images, config, int(chunk_size), spacing)

  def auto_chunk_size(self, image_shape: tuple, n_images: int, config, *,
                      budget_bytes: int | None = None, safety: float = 0.8) -> int:
    """Images to vmap together so that a chunk fits in `safety` x the available memory:
    `floor(safety * budget / image_peak_bytes)`, clipped to [1, n_images]; with chunk 1
    the batch runs one image after the other (peak memory of one image)."""
    budget = available_bytes() if budget_bytes is None else budget_bytes
    per_image = self.image_peak_bytes(tuple(image_shape), config)
    return int(max(1, min(n_images, (safety * budget) // max(per_image, 1))))


@functools.lru_cache(maxsize=64)
def _peak_bytes(entry: EntryPoints, image_shape: tuple, config) -> int:
  stats = entry.compile_one(image_shape, config).memory_analysis()
  return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes)


SGSCN = EntryPoints(segment_image, Config, spacing=True)


def segment_one(key, image, config: Config = Config(), *, spacing=None) -> Segmentation:
  """Segments one image `[*spatial, C_in]` (float, e.g. in [0, 1]) with a fresh network.

  Args:
    key: a PRNG key (typed, or raw uint32[2]) for the network's initialisation.
    image: `[H, W, C_in]` or `[D, H, W, C_in]`.
    config: static; equal configurations share one compiled program per input shape.
    spacing: optional `[r]` physical pixel/voxel size per spatial axis (e.g. `(dz, dy, dx)`
      in mm): L_cc then measures compactness in physical units. None: every axis spans
      [-1, 1]. Not static: one program serves every spacing.

  Returns:
    `Segmentation`: labels `[*spatial]` int32 in 0..K-1, K, the iterations run, whether
    the run stayed finite, and the per-iteration `History`.

  Examples:
    >>> import jax
    >>> from sgscn_jax import Config, segment_one
    >>> from sgscn_jax.data import lesion_image
    >>> image, mask = lesion_image(0, (24, 32))      # [24, 32, 3] in [0, 1], [24, 32] bool
    >>> result = segment_one(jax.random.key(0), image, Config(n_channels=8, iterations=2))
    >>> result.labels.shape, result.labels.dtype
    ((24, 32), dtype('int32'))
    >>> int(result.labels.max()) < int(result.n_labels) <= 8    # K <= n_channels
    True
    >>> result.history.total.shape                   # one entry per allowed iteration
    (2,)
  """
  return SGSCN.segment_one(key, image, config, spacing=spacing)


def segment_batch(keys, images, config: Config = Config(), *, batching: str | None = None,
                  chunk_size: int | None = None, spacing=None, mesh=None) -> Segmentation:
  """`segment_one` for each of `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit;
  the arguments are those of `EntryPoints.segment_batch`. Each image is optimised on its own
  (its own network, its own stopping); the result's fields have a leading batch axis.

  Examples:
    >>> import numpy as np
    >>> from sgscn_jax import Config, image_keys, segment_batch
    >>> from sgscn_jax.data import lesion_image
    >>> images = np.stack([lesion_image(i, (24, 32))[0] for i in range(2)])  # [2, 24, 32, 3]
    >>> batch = segment_batch(image_keys(0, 2), images, Config(n_channels=8, iterations=2))
    >>> batch.labels.shape, batch.n_labels.shape
    ((2, 24, 32), (2,))
    >>> bool((batch.labels.max(axis=(1, 2)) < batch.n_labels).all())
    True
  """
  return SGSCN.segment_batch(keys, images, config, batching=batching, chunk_size=chunk_size,
                             spacing=spacing, mesh=mesh)


def compile_segment_one(image_shape: tuple, config: Config = Config()):
  """SGSCN's compiled single-image program for `image_shape` (benchmark, memory studies)."""
  return SGSCN.compile_one(image_shape, config)


def image_peak_bytes(image_shape: tuple, config: Config) -> int:
  """Working memory of one SGSCN image's whole optimisation (XLA's buffer assignment); a
  vmapped chunk of n images needs about n times this. (2D, default config: about 19
  `[P, C]` float32 buffers.)"""
  return SGSCN.image_peak_bytes(image_shape, config)


def auto_chunk_size(image_shape: tuple, n_images: int, config: Config, **kwargs) -> int:
  """SGSCN's `EntryPoints.auto_chunk_size`."""
  return SGSCN.auto_chunk_size(image_shape, n_images, config, **kwargs)
