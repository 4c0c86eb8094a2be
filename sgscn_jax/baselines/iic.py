"""IIC for the pixels of one image (after Ji, Henriques, Vedaldi, ICCV 2019, segmentation).

A CNN Phi (SGSCN's network, `feature_channels` channels) with two softmax heads,
  main  q = softmax(f W + b)  over k clusters,   overclustering  o  over k_o = factor * k,
is trained on one image x alone to make each pixel's assignment predictable from the
assignment of the same pixel (and its neighbours) in a randomly transformed copy g(x):

  p1 = q(x) `[*spatial, k]`,  p2 = g^-1(q(g(x))) with mask m (`augment.undo`)
  joint over displacements t in {-d..d}^r (the paper's local spatial invariance):
    J = sum_t sum_u p1[u] (m p2)[u + t]^T / sum_t sum_u m[u + t]        `[k, k]`
  P = (J + J^T) / 2,   I(P) = sum_ij P_ij log(P_ij / (P_i P_j))          (nats, <= log k)
  L = -I(P_main) - w_o I(P_over)                                          (both heads summed)

with Adam, a fresh g drawn every step; labels = argmax of the main head on x itself,
renumbered. `iic_mutual_information` is the displacement-free core, for testing.

Known bias: I(P) = H(Z) - H(Z | Z'), so among consistent assignments IIC prefers balanced
clusters; with a 3x3 receptive field the pixels next to a region boundary can be given
to either side consistently, and they go to the smaller region (measured with k = 2: the
28 % disc of `synthetic.two_region_image` 48x48 comes out one pixel too large, DSC
0.91-0.94; two 3x3 blocks, a 5x5 field, make it two pixels, DSC 0.84-0.86, hence
`n_conv=1` by default). The image is
edge-padded before the network (`common.padded_features`), as in DeepCluster here.

Left out from the paper: the Sobel pre-filter, the several sub-heads per head (the paper
keeps the best one), alternating the two heads by epoch (summed here), rotations,
scaling and hue jitter (see `augment`), and the lambda != 1 variant of the loss.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sgscn_jax.core import network
from sgscn_jax.core import loop as _loop
from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.registry import Method
from sgscn_jax.baselines import augment, common
from sgscn_jax.core.loop import Segmentation

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class IICConfig:
  """Settings of the per-image IIC baseline.

  Attributes:
    k: clusters of the main head (the maximum number of labels).
    overcluster_factor: the auxiliary head has `overcluster_factor * k` clusters.
    overcluster_weight: w_o, weight of the auxiliary head's loss (0 disables it).
    steps: Adam updates on the image.
    learning_rate: Adam learning rate.
    feature_channels: channels of the CNN body.
    n_conv: 3x3 blocks of the CNN body.
    displacement: d, displacements t in {-d..d}^r pooled into one joint ((2d+1)^r of them).
    max_shift: largest shift of g, as a fraction of each side.
    flip: whether g may flip the last spatial axis.
    jitter: strength j of the brightness, contrast and saturation jitter.
  """
  k: int = 3
  overcluster_factor: int = 5
  overcluster_weight: float = 1.0
  steps: int = 100
  learning_rate: float = 0.01
  feature_channels: int = 32
  n_conv: int = 1
  displacement: int = 1
  max_shift: float = 0.1
  flip: bool = True
  jitter: float = 0.1

  def __post_init__(self):
    if self.k < 2:
      raise ValueError(f"k must be >= 2, got {self.k}")
    if self.overcluster_factor < 1 or self.steps < 1 or self.displacement < 0:
      raise ValueError("overcluster_factor and steps must be >= 1, displacement >= 0")

  @property
  def network_config(self):
    return common.feature_network_config(self.feature_channels, self.n_conv)


def mutual_information_of_joint(joint: jax.Array) -> jax.Array:
  """I(P) of a joint distribution `[K, K]` (entries >= 0, sum 1), symmetrised first.

  P = (J + J^T) / 2, P_i = sum_j P_ij, I = sum_ij P_ij (log P_ij - log P_i - log P_j),
  with 0 log 0 = 0 (logs of entries below 1e-12 are taken at 1e-12). In nats.
  """
  p = 0.5 * (joint + joint.T)
  p_i = jnp.sum(p, axis=1, keepdims=True)
  p_j = jnp.sum(p, axis=0, keepdims=True)
  log = lambda v: jnp.log(jnp.maximum(v, _TINY))
  return jnp.sum(p * (log(p) - log(p_i) - log(p_j)))


def iic_mutual_information(p1: jax.Array, p2: jax.Array) -> jax.Array:
  """IIC's objective for paired soft assignments `p1, p2` `[P, K]` (rows sum to 1).

  J = p1^T p2 / P `[K, K]`, then `mutual_information_of_joint(J)`. Identical one-hot
  assignments over K balanced clusters give log K; independent ones with equal marginals
  give 0 (J is symmetrised, so a product J with unequal marginals does not).
  """
  return mutual_information_of_joint(p1.T @ p2 / p1.shape[0])


def displaced_joint(p1: jax.Array, p2: jax.Array, valid: jax.Array, d: int) -> jax.Array:
  """J over displacements t in {-d..d}^r (module docstring).

  Shapes: p1 `[*spatial, K]`, p2 `[*spatial, K']`, valid `[*spatial]` bool -> `[K, K']`.

  p2 is zero-padded by d, so pairs that leave the image, like pixels with `valid` False,
  add nothing to the sum or to the normaliser.
  """
  spatial = p1.shape[:-1]
  mask = valid.astype(p2.dtype)[..., None]
  # The mask rides along as a last channel, so one windowed copy serves both.
  padded = jnp.pad(jnp.concatenate([p2 * mask, mask], axis=-1),
                   [(d, d)] * len(spatial) + [(0, 0)])
  windows = jnp.stack([
      padded[tuple(slice(o, o + n) for o, n in zip(offset, spatial))].reshape(-1, padded.shape[-1])
      for offset in itertools.product(range(2 * d + 1), repeat=len(spatial))])   # [T, P, K'+1]
  sums = jnp.einsum("pi,tpj->ij", p1.reshape(-1, p1.shape[-1]), windows[..., :-1])
  return sums / jnp.maximum(jnp.sum(windows[..., -1]), 1.0)


class Params(NamedTuple):
  body: network.Params
  main: dict                    # 1x1 head, F -> k
  over: dict                    # 1x1 head, F -> overcluster_factor * k


def init_params(key, image_shape, config: IICConfig) -> Params:
  body_key, main_key, over_key = jax.random.split(key, 3)
  f = config.feature_channels
  return Params(network.init(body_key, image_shape, config.network_config),
                common.init_linear(main_key, f, config.k),
                common.init_linear(over_key, f, config.overcluster_factor * config.k))


def heads(params: Params, image, config: IICConfig):
  """Soft assignments of the main and (if weighted) overclustering heads:
  `([*spatial, k], [*spatial, k_o] or None)`."""
  f = common.padded_features(params.body, image, config.network_config)
  main = jax.nn.softmax(common.apply_linear(params.main, f), axis=-1)
  if not config.overcluster_weight:
    return main, None
  return main, jax.nn.softmax(common.apply_linear(params.over, f), axis=-1)


def iic_loss(params: Params, image, transform: augment.Transform, config: IICConfig):
  """`(L, (I_main, I_over, main head on x))` for one draw of g (module docstring)."""
  limits = augment.shift_limits(image.shape[:-1], config.max_shift)
  # Both copies through one (vmapped) network: half the program, the same values.
  pair = jnp.stack([image, augment.apply(image, transform, limits)])
  q, o = jax.vmap(lambda x: heads(params, x, config))(pair)
  q1, q2 = q[0], q[1]
  o1, o2 = (None, None) if o is None else (o[0], o[1])
  q2, valid = augment.undo(q2, transform, limits)
  d = config.displacement
  mi_main = mutual_information_of_joint(displaced_joint(q1, q2, valid, d))
  if o1 is None:
    return -mi_main, (mi_main, jnp.zeros_like(mi_main), q1)
  o2, _ = augment.undo(o2, transform, limits)
  mi_over = mutual_information_of_joint(displaced_joint(o1, o2, valid, d))
  return -mi_main - config.overcluster_weight * mi_over, (mi_main, mi_over, q1)


class LoopState(NamedTuple):
  params: Params
  opt_state: optax.OptState
  updates: jax.Array            # [] int32, updates applied
  finite: jax.Array             # [] bool
  total: jax.Array              # [T] float32, L before the update
  mi_main: jax.Array            # [T] float32
  mi_over: jax.Array            # [T] float32
  n_labels: jax.Array           # [T] int32, distinct argmax labels of the main head on x


def segment_image(key, image, config: IICConfig) -> Segmentation:
  image = image.astype(jnp.float32)
  init_key, key = jax.random.split(key)
  params = init_params(init_key, image.shape, config)
  optimizer = optax.adam(config.learning_rate)
  t = config.steps
  nan = jnp.full((t,), jnp.nan, jnp.float32)
  state = LoopState(params, optimizer.init(params), jnp.array(0, jnp.int32), jnp.array(True),
                    nan, nan, nan, jnp.full((t,), -1, jnp.int32))

  def step(i, state: LoopState) -> LoopState:
    transform = augment.random_transform(jax.random.fold_in(key, i), image.shape[:-1],
                                         config.max_shift, config.flip, config.jitter)
    (loss, (mi_main, mi_over, q1)), grads = jax.value_and_grad(iic_loss, has_aux=True)(
        state.params, image, transform, config)
    ok = jnp.isfinite(loss) & common.all_finite(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new = (optax.apply_updates(state.params, updates), opt_state)
    params, opt_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new,
                                     (state.params, state.opt_state))
    labels = jnp.argmax(q1, axis=-1)
    return LoopState(params, opt_state, state.updates + ok.astype(jnp.int32), state.finite & ok,
                     state.total.at[i].set(loss), state.mi_main.at[i].set(mi_main),
                     state.mi_over.at[i].set(mi_over),
                     state.n_labels.at[i].set(_loop.count_labels(labels, config.k)))

  state = lax.fori_loop(0, config.steps, step, state)
  q, _ = heads(state.params, image, config)
  labels, n_labels = _loop.renumber(jnp.argmax(q, axis=-1).astype(jnp.int32), config.k)
  history = common.make_history(
      state.total, {"mutual_information": state.mi_main,
                    "mutual_information_overcluster": state.mi_over}, state.n_labels)
  return Segmentation(labels, n_labels, state.updates, state.finite, history)


ENTRY = EntryPoints(segment_image, IICConfig)


def segment_one(key, image, config: IICConfig = IICConfig()) -> Segmentation:
  """IIC on one image `[*spatial, C_in]` (values in [0, 1]) with a fresh network.

  Args:
    key: PRNG key (typed or raw uint32[2]): initialisation and every step's transform.
    image: `[H, W, C_in]` (or `[D, H, W, C_in]`), float in [0, 1].
    config: static `IICConfig`.

  Returns:
    `Segmentation`: labels `[*spatial]` = argmax of the main head on the image,
    renumbered 0..K-1; `iterations` = Adam updates applied; history `[steps]`: total = L
    (pre-update), terms["mutual_information"] and ["mutual_information_overcluster"]
    (nats), n_labels (distinct main-head labels before the update).
  """
  return ENTRY.segment_one(key, image, config)


def segment_batch(keys, images, config: IICConfig = IICConfig(), *,
                  batching: str | None = None, mesh=None) -> Segmentation:
  """`segment_one` over `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit.

  `batching`: "vmap", "sequential" (`lax.map`) or None (`core.batching.default_batching()`);
  `mesh`: None or a device mesh to shard the batch over (`core.batching.EntryPoints.segment_batch`).
  """
  return ENTRY.segment_batch(keys, images, config, batching=batching, mesh=mesh)


# registered, with `ENTRY`, by `sgscn_jax.builtin_methods`
METHOD = Method(
    name="iic", title="IIC", core=segment_image, default_config=IICConfig(),
    quick_config=IICConfig(steps=2, feature_channels=8),
    description="mutual information between transformed copies (Ji et al. 2019)")
