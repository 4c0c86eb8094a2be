"""What the baselines share: key handling, config checks, and the single/batch entry points.

Every baseline is one pure function `core(key, image, config) -> Segmentation` written for
ONE image `[*spatial, C_in]` and one PRNG key, with `config` a frozen dataclass (static).
`EntryPoints(core, config_type)` compiles it three ways, once each per (config, shape):

    one         jit(core)                               one image
    vmap        jit(vmap(core, in_axes=(0, 0, None)))   [B] keys, [B, *spatial, C_in] images
    sequential  jit(lax.map(core))                      the same, one image after the other

and checks inputs on the host before calling them. The result is the engine's
`optimize.Segmentation`, so the data-set runner treats a baseline exactly like SGSCN.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sgscn_jax import network, optimize, sharding
from sgscn_jax.config import Config
from sgscn_jax.optimize import History, Segmentation

Core = Callable[[jax.Array, jax.Array, object], Segmentation]


def as_key(key) -> jax.Array:
  """A typed PRNG key (or keys) from a typed key or raw uint32 key data `[..., 2]`."""
  key = key if isinstance(key, jax.Array) else jnp.asarray(key)
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  return jax.random.wrap_key_data(key.astype(jnp.uint32))


def make_history(total: jax.Array, terms: Dict[str, jax.Array], n_labels: jax.Array) -> History:
  """`History` with float32 `total` and `terms` `[T]` and int32 `n_labels` `[T]`."""
  return History(total=total.astype(jnp.float32),
                 terms={n: v.astype(jnp.float32) for n, v in terms.items()},
                 n_labels=n_labels.astype(jnp.int32))


def all_finite(tree) -> jax.Array:
  """[] bool: every float leaf of `tree` is finite everywhere."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class EntryPoints:
  """The public `segment_one` / `segment_batch` of a baseline `core` (see module docstring)."""

  def __init__(self, core: Core, config_type: type,
               compiler_options: Dict[str, object] | None = None):
    """`compiler_options` go to every `jax.jit` (e.g. {"xla_backend_optimization_level": 0}
    halves XLA:CPU compile time and doubles or triples run time: for tests)."""
    self.core = core
    self.config_type = config_type
    jit = functools.partial(jax.jit, static_argnums=2, compiler_options=compiler_options)
    self.one = jit(core)
    self.vmap = jit(jax.vmap(core, in_axes=(0, 0, None)))
    self.sequential = jit(
        lambda keys, images, config: lax.map(lambda a: core(a[0], a[1], config), (keys, images)))

  def _check_config(self, config) -> None:
    if not isinstance(config, self.config_type):
      raise TypeError(f"expected a {self.config_type.__name__}, got {type(config).__name__}")

  def segment_one(self, key, image, config) -> Segmentation:
    self._check_config(config)
    optimize.check_image(image)
    return self.one(as_key(key), jnp.asarray(image, jnp.float32), config)

  def segment_batch(self, keys, images, config, batching: str | None = None,
                    mesh=None) -> Segmentation:
    """Batched `core`; `batching` and `mesh` as in `optimize.segment_batch`."""
    self._check_config(config)
    shape = tuple(np.shape(images))
    if len(shape) < 1:
      raise ValueError(f"images: expected [B, *spatial, C_in], got shape {shape}")
    for b in range(shape[0]):
      optimize.check_image(images[b], name=f"images[{b}]")
    keys = as_key(keys)
    if keys.shape != (shape[0],):
      raise ValueError(f"keys: expected {shape[0]} keys (one per image), "
                       f"got key shape {keys.shape}")
    batching = batching or optimize.default_batching()
    if batching not in ("vmap", "sequential"):
      raise ValueError(f"batching must be 'vmap' or 'sequential', got {batching!r}")
    fn = self.vmap if batching == "vmap" else self.sequential
    if mesh is not None:
      return sharding.segment_sharded(fn, keys, jnp.asarray(images, jnp.float32), config, mesh)
    return fn(keys, jnp.asarray(images, jnp.float32), config)


def init_linear(key: jax.Array, n_in: int, n_out: int) -> Dict[str, jax.Array]:
  """A 1x1 convolution (a per-pixel linear map) `n_in -> n_out`, PyTorch's default init.

  weight `[n_in, n_out]` and bias `[n_out]` ~ U(-1/sqrt(n_in), +1/sqrt(n_in)).
  """
  bound = 1.0 / float(n_in) ** 0.5
  w_key, b_key = jax.random.split(key)
  return {"weight": jax.random.uniform(w_key, (n_in, n_out), jnp.float32, -bound, bound),
          "bias": jax.random.uniform(b_key, (n_out,), jnp.float32, -bound, bound)}


def apply_linear(head: Dict[str, jax.Array], features: jax.Array) -> jax.Array:
  """`features @ weight + bias`: `[*spatial, n_in] -> [*spatial, n_out]`."""
  return features @ head["weight"] + head["bias"]


def feature_network_config(channels: int, n_conv: int) -> Config:
  """The SGSCN network (`sgscn_jax.network`) sized as a feature extractor: `n_conv` blocks
  `conv 3x3 -> ReLU -> BN` of `channels` channels, then `conv 1x1 -> BN`; output
  `[*spatial, channels]`. Only the network fields of the returned `Config` are used."""
  return Config(n_channels=channels, n_conv=n_conv)


def padded_features(params, image: jax.Array, config: Config) -> jax.Array:
  """`network.apply` on `image` `[*spatial, C]` edge-padded by `config.n_conv` pixels (the
  network's receptive-field radius), cropped back: `[*spatial, config.n_channels]`.

  The network zero-pads every 3x3 convolution, so without this a random network answers
  the image border with features of its own and clustering makes the border a segment.
  BN statistics include the padding ring.
  """
  pad = config.n_conv
  spatial = image.shape[:-1]
  x = jnp.pad(image, [(pad, pad)] * len(spatial) + [(0, 0)], mode="edge")
  f = network.apply(params, x, config)
  return f[tuple(slice(pad, pad + n) for n in spatial)]
