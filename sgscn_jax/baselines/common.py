"""What the baselines share: histories, finiteness checks, linear heads, padded features.

Every baseline is one pure function `segment_image(key, image, config) -> Segmentation`
written for ONE image `[*spatial, C_in]` and one PRNG key, with `config` a frozen dataclass
(static); `core.batching.EntryPoints` turns it into the checked, jitted `segment_one` /
`segment_batch`, and `sgscn_jax.builtin_methods` registers it once (`sgscn_jax.registry`)
for every runner and table.
"""

from __future__ import annotations

from typing import Dict

import jax
import jax.numpy as jnp

from sgscn_jax.core import network
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import History



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
  y = features @ head["weight"]
  return y + head["bias"].reshape((1,) * (y.ndim - 1) + (-1,))


def feature_network_config(channels: int, n_conv: int) -> Config:
  """The SGSCN network (`sgscn_jax.core.network`) sized as a feature extractor: `n_conv` blocks
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
