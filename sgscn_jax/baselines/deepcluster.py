"""DeepCluster for the pixels of one image (after Caron et al., ECCV 2018).

DeepCluster alternates clustering a network's features and training the network to
predict the clusters. Here the "data set" is the P pixels of one image and the network
is SGSCN's CNN (`sgscn_jax.core.network`, `feature_channels` channels, `n_conv` 3x3 blocks)
trained from scratch on that image alone. With features f = F(theta, image) `[P, F]`
(the image edge-padded first, see `common.padded_features`):

  for round r = 0..R-1:
    (a) cluster:  z = whiten(f) `[P, d]` (optionally L2-normalised), a = kmeans(z, k)
          whiten(f) = (f - mean f) V diag(lambda + eps tr(Cov))^(-1/2),  (lambda, V) the
                      top-d eigenpairs of Cov = (f - mean f)^T (f - mean f) / P   (PCA whitening)
    (b) train: a fresh 1x1 classifier W `[F, k]`, b `[k]` (re-initialised every round, its
        momentum too), then S steps of SGD with momentum on (theta, W, b) of the
        cross-entropy with the clusters as targets, each cluster weighted alike:
          L_ce = - sum_p w_p log softmax(f_p W + b)[a_p],  w_p = 1 / (K' |{q : a_q = a_p}|),
        K' the non-empty clusters (the paper samples images uniformly over clusters for
        the same purpose: a big cluster must not swamp the others).
  final: one more clustering (a) of the trained network's features.

**Labels** are that final clustering, renumbered; not the classifier's argmax (the
classifier only learns to reproduce the previous round's clusters; on the synthetic
images below the two scored within 0.01-0.03 DSC of each other, neither better).

Departures from the paper, each measured with the defaults otherwise (k = 3; mean
largest-overlap DSC over seeds 0-3 of `synthetic.two_region_image` 48x48 / of
`synthetic.lesion_image` 96x128):
* No L2 normalisation by default (`normalise=False`): 0.954 / 0.920 without, 0.885 /
  0.767 with. With few whitened dimensions, pixels whose features sit near the data mean
  (those on a region boundary) are sent to arbitrary directions by z / |z|.
* d = k - 1 whitened dimensions by default (k centres span a (k-1)-dimensional affine
  space): with d = 8, 0.782 / 0.941; whitening noise directions to unit variance lets
  k-means split noise (one two-region seed fell to 0.40).
* One 3x3 block (`n_conv=1`): with two (a 5x5 field) region boundaries become a band of
  "edge" features, 0.891 / 0.799.
* Edge padding before the network (with zero padding the image border formed a cluster).
Left out: the empty-cluster fix (a big cluster's centre copied with a small perturbation;
here an empty cluster keeps its centre and the result has fewer labels), the Sobel
pre-filter, data augmentation, and the NMI between rounds as a stability check.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sgscn_jax.core import network
from sgscn_jax.core import loop as _loop
from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.registry import Method
from sgscn_jax.baselines import common, kmeans
from sgscn_jax.core.loop import Segmentation


@dataclasses.dataclass(frozen=True)
class DeepClusterConfig:
  """Settings of the per-image DeepCluster baseline.

  Attributes:
    k: number of k-means clusters (the maximum number of labels).
    rounds: cluster-then-train rounds R (then one final clustering).
    steps_per_round: SGD steps S per round; R * S updates in all.
    feature_channels: channels F of the feature network.
    n_conv: 3x3 blocks of the feature network.
    pca_dim: whitened dimensions d kept (<= feature_channels); None: k - 1.
    whiten_epsilon: eps added to the eigenvalues, relative to the total variance tr(Cov).
    normalise: L2-normalise the whitened features (the paper does; see module docstring).
    learning_rate: SGD learning rate.
    momentum: SGD momentum.
    balanced: weight clusters alike in L_ce (see module docstring); False: plain mean.
    kmeans_restarts: k-means++ starts per clustering.
    kmeans_iterations: Lloyd iterations per start.
  """
  k: int = 3
  rounds: int = 10
  steps_per_round: int = 10
  feature_channels: int = 32
  n_conv: int = 1
  pca_dim: Optional[int] = None
  whiten_epsilon: float = 1e-3
  normalise: bool = False
  learning_rate: float = 0.05
  momentum: float = 0.9
  balanced: bool = True
  kmeans_restarts: int = 3
  kmeans_iterations: int = 20

  def __post_init__(self):
    if self.k < 2:
      raise ValueError(f"k must be >= 2, got {self.k}")
    if self.rounds < 1 or self.steps_per_round < 1:
      raise ValueError(f"rounds and steps_per_round must be >= 1, got "
                       f"{self.rounds}, {self.steps_per_round}")
    if not 1 <= self.whitened_dim <= self.feature_channels:
      raise ValueError(f"pca_dim must be in [1, feature_channels={self.feature_channels}], "
                       f"got {self.whitened_dim}")

  @property
  def whitened_dim(self) -> int:
    return self.k - 1 if self.pca_dim is None else self.pca_dim

  @property
  def network_config(self):
    return common.feature_network_config(self.feature_channels, self.n_conv)


def pca_whiten(features: jax.Array, dim: int, epsilon: float) -> jax.Array:
  """PCA whitening to the top `dim` components: `[P, F] -> [P, dim]`.

  z = (f - mean f) V diag(lambda + epsilon tr(Cov))^(-1/2), with (lambda, V) the `dim`
  largest eigenpairs of the covariance Cov `[F, F]` (biased, over the P rows). Each
  column of z has variance lambda_i / (lambda_i + epsilon tr(Cov)) <= 1.
  """
  centred = features - jnp.mean(features, axis=0, keepdims=True)
  cov = centred.T @ centred / features.shape[0]
  eigenvalues, eigenvectors = jnp.linalg.eigh(cov)             # ascending
  eigenvalues = jnp.maximum(eigenvalues[::-1][:dim], 0.0)
  eigenvectors = eigenvectors[:, ::-1][:, :dim]
  scale = lax.rsqrt(eigenvalues + epsilon * jnp.trace(cov) + 1e-12)
  return (centred @ eigenvectors) * scale[None, :]


def l2_normalise(z: jax.Array) -> jax.Array:
  """Each row divided by its Euclidean norm (rows of norm < 1e-8 are left near 0)."""
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-8)


def _features(params, image, config: DeepClusterConfig) -> jax.Array:
  """f = F(theta, image) as `[P, F]`."""
  f = common.padded_features(params, image, config.network_config)
  return f.reshape(-1, config.feature_channels)


def cluster_features(key, features: jax.Array, config: DeepClusterConfig) -> kmeans.KMeansResult:
  """Step (a): k-means on the whitened (optionally L2-normalised) features `[P, F]`."""
  z = pca_whiten(lax.stop_gradient(features), config.whitened_dim, config.whiten_epsilon)
  if config.normalise:
    z = l2_normalise(z)
  return kmeans.kmeans(key, z, config.k, config.kmeans_restarts, config.kmeans_iterations)


def cluster_weights(assignments: jax.Array, k: int, balanced: bool) -> jax.Array:
  """Per-pixel weights `[P]` summing to 1: 1 / (K' n_{a_p}) if `balanced`, else 1 / P."""
  if not balanced:
    return jnp.full(assignments.shape, 1.0 / assignments.shape[0], jnp.float32)
  counts = jnp.zeros((k,), jnp.float32).at[assignments].add(1.0)
  non_empty = jnp.sum(counts > 0)
  return 1.0 / (non_empty * counts[assignments])


def weighted_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
  """-sum_p w_p log softmax(logits_p)[t_p]; `[P, k], [P], [P] -> []`."""
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.sum(weights * jnp.take_along_axis(log_probs, targets[:, None], axis=-1)[:, 0])


class RoundState(NamedTuple):
  params: network.Params        # the feature network theta
  opt_state: optax.OptState     # theta's SGD momentum (kept across rounds)
  finite: jax.Array             # [] bool, False once a loss or gradient was not finite
  updates: jax.Array            # [] int32, SGD updates applied
  total: jax.Array              # [R * S] float32, L_ce per step
  inertia: jax.Array            # [R * S] float32, mean k-means distance of the round's clusters
  n_labels: jax.Array           # [R * S] int32, non-empty clusters of the round
  labels: jax.Array             # [P] int32, the latest clustering
  final_centres: jax.Array      # [k, d] float32, its centres


def _round(r, state: RoundState, key, image, config: DeepClusterConfig) -> RoundState:
  """Round r: clustering (a), then (b) for r < R. Round R only clusters (the labels)."""
  optimizer = optax.sgd(config.learning_rate, momentum=config.momentum)
  features = _features(state.params, image, config)
  clusters = cluster_features(jax.random.fold_in(jax.random.fold_in(key, 0), r), features, config)
  targets = clusters.assignments
  weights = cluster_weights(targets, config.k, config.balanced)
  n_clusters = jnp.sum(jnp.zeros((config.k,), jnp.int32).at[targets].set(1))
  inertia = clusters.inertia / targets.shape[0]
  classifier = common.init_linear(jax.random.fold_in(jax.random.fold_in(key, 1), r),
                                  config.feature_channels, config.k)

  def objective(trainable):
    params, classifier = trainable
    f = _features(params, image, config)
    return weighted_cross_entropy(common.apply_linear(classifier, f), targets, weights)

  def step(s, carry):
    state, classifier, classifier_opt = carry
    loss, (g_params, g_classifier) = jax.value_and_grad(objective)((state.params, classifier))
    ok = jnp.isfinite(loss) & common.all_finite((g_params, g_classifier))
    u_params, opt_state = optimizer.update(g_params, state.opt_state, state.params)
    u_classifier, new_classifier_opt = optimizer.update(g_classifier, classifier_opt, classifier)
    i = r * config.steps_per_round + s
    new = state._replace(
        params=optax.apply_updates(state.params, u_params), opt_state=opt_state,
        updates=state.updates + 1)
    new_carry = (new, optax.apply_updates(classifier, u_classifier), new_classifier_opt)
    # A non-finite step is recorded and not applied; training stops improving from there.
    state, classifier, classifier_opt = jax.tree.map(
        lambda a, b: jnp.where(ok, a, b), new_carry, carry)
    state = state._replace(
        finite=state.finite & ok, total=state.total.at[i].set(loss),
        inertia=state.inertia.at[i].set(inertia), n_labels=state.n_labels.at[i].set(n_clusters))
    return state, classifier, classifier_opt

  # One code path for every round keeps the program small: the last round's training
  # loop runs zero times (a dynamic trip count) and its clustering is kept as the labels.
  steps = jnp.where(r < config.rounds, config.steps_per_round, 0)
  state, _, _ = lax.fori_loop(0, steps, step, (state, classifier, optimizer.init(classifier)))
  return state._replace(labels=targets, final_centres=clusters.centres)


def segment_image(key, image, config: DeepClusterConfig) -> Segmentation:
  image = image.astype(jnp.float32)
  init_key, key = jax.random.split(key)
  params = network.init(init_key, image.shape, config.network_config)
  optimizer = optax.sgd(config.learning_rate, momentum=config.momentum)
  t = config.rounds * config.steps_per_round
  nan = jnp.full((t,), jnp.nan, jnp.float32)
  p = image.size // image.shape[-1]
  state = RoundState(params, optimizer.init(params), jnp.array(True), jnp.array(0, jnp.int32),
                     nan, nan, jnp.full((t,), -1, jnp.int32), jnp.zeros((p,), jnp.int32),
                     jnp.zeros((config.k, config.whitened_dim), jnp.float32))
  state = lax.fori_loop(0, config.rounds + 1,
                        lambda r, s: _round(r, s, key, image, config), state)
  labels, n_labels = _loop.renumber(state.labels.reshape(image.shape[:-1]), config.k)
  history = common.make_history(state.total, {"cross_entropy": state.total,
                                              "kmeans_inertia": state.inertia}, state.n_labels)
  finite = state.finite & common.all_finite(state.final_centres)
  return Segmentation(labels, n_labels, state.updates, finite, history)


ENTRY = EntryPoints(segment_image, DeepClusterConfig)


def segment_one(key, image, config: DeepClusterConfig = DeepClusterConfig()) -> Segmentation:
  """DeepCluster on one image `[*spatial, C_in]` with a fresh network.

  Args:
    key: PRNG key (typed or raw uint32[2]): network init, k-means starts, classifiers.
    image: `[H, W, C_in]` (or `[D, H, W, C_in]`), float, e.g. in [0, 1].
    config: static `DeepClusterConfig`.

  Returns:
    `Segmentation`: labels `[*spatial]` of the final clustering, renumbered 0..K-1;
    `iterations` = SGD updates applied (R * S unless a step was not finite); history
    `[R * S]`: total = terms["cross_entropy"] (pre-update L_ce), terms["kmeans_inertia"]
    (mean squared distance of the round's clustering, whitened space), n_labels
    (non-empty clusters of the round).
  """
  return ENTRY.segment_one(key, image, config)


def segment_batch(keys, images, config: DeepClusterConfig = DeepClusterConfig(), *,
                  batching: str | None = None, mesh=None) -> Segmentation:
  """`segment_one` over `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit.

  `batching`: "vmap", "sequential" (`lax.map`) or None (`core.batching.default_batching()`);
  `mesh`: None or a device mesh to shard the batch over (`core.batching.EntryPoints.segment_batch`).
  """
  return ENTRY.segment_batch(keys, images, config, batching=batching, mesh=mesh)


# registered, with `ENTRY`, by `sgscn_jax.builtin_methods`
METHOD = Method(
    name="deepcluster", title="DeepCluster", core=segment_image,
    default_config=DeepClusterConfig(),
    quick_config=DeepClusterConfig(rounds=1, steps_per_round=2, feature_channels=8,
                                   kmeans_restarts=1, kmeans_iterations=5),
    description="alternate k-means on CNN features and CE training (Caron et al. 2018)")
