"""k-means on pixel colour: SGSCN's simplest baseline (paper Table 1, k = 3 and 4 on PH2).

The pixels of one image are P points x_p in R^D (D = C_in, the colour channels, no
scaling). k-means minimises the inertia

    J(mu, a) = sum_p |x_p - mu_{a_p}|^2,     a_p in {0..k-1},  mu `[k, D]`,

by Lloyd's iteration from a k-means++ start (Arthur & Vassilvitskii 2007):

  init   mu_0 = x_u, u uniform; then mu_j = x_q, q drawn with probability
         proportional to D(x_q)^2 = min_{i<j} |x_q - mu_i|^2  (uniform if all are 0)
  E-step a_p = argmin_j |x_p - mu_j|^2             (ties: the lower j)
  M-step mu_j = mean{x_p : a_p = j}                 (an empty cluster keeps its centre)

run for a fixed number of iterations (a fixed point is reached when no assignment
changes; later iterations then change nothing). `restarts` independent starts run side by
side (vmap); the one with the lowest final inertia wins (ties: the lower restart). The
final labels are one last E-step with the final centres, as scikit-learn does.

Everything is a pure function of `(key, x)`: the same key gives the same labels.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sgscn_jax.core import loop as _loop
from sgscn_jax.core.batching import EntryPoints
from sgscn_jax.registry import Method
from sgscn_jax.baselines import common
from sgscn_jax.core.loop import Segmentation


@dataclasses.dataclass(frozen=True)
class KMeansConfig:
  """Settings of the k-means baseline.

  Attributes:
    k: number of clusters (SGSCN's table: 3 and 4 for PH2, 5 and 6 for ultrasound).
    restarts: independent k-means++ starts; the lowest final inertia wins.
    iterations: Lloyd iterations per start (E-step + M-step each).
  """
  k: int = 3
  restarts: int = 5
  iterations: int = 50

  def __post_init__(self):
    if self.k < 1:
      raise ValueError(f"k must be >= 1, got {self.k}")
    if self.restarts < 1:
      raise ValueError(f"restarts must be >= 1, got {self.restarts}")
    if self.iterations < 1:
      raise ValueError(f"iterations must be >= 1, got {self.iterations}")


class KMeansResult(NamedTuple):
  """One k-means run on P points in D dimensions with k clusters, T iterations."""
  centres: jax.Array            # [k, D] float32, after the last M-step
  assignments: jax.Array        # [P] int32, E-step with `centres`
  inertia: jax.Array            # [] float32, sum_p |x_p - centres[a_p]|^2
  inertia_history: jax.Array    # [T] float32, inertia of iteration t's E-step
  clusters_history: jax.Array   # [T] int32, non-empty clusters after iteration t's E-step
  iterations: jax.Array         # [] int32, iterations until no assignment changed (<= T)


def squared_distances(x: jax.Array, centres: jax.Array) -> jax.Array:
  """|x_p - mu_j|^2 = |x_p|^2 - 2 x_p . mu_j + |mu_j|^2, clipped at 0.

  `[P, D], [k, D] -> [P, k]`.
  """
  x2 = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  c2 = jnp.sum(jnp.square(centres), axis=-1)
  return jnp.maximum(x2 - 2.0 * (x @ centres.T) + c2[None, :], 0.0)


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding: `k` centres `[k, D]` drawn from the rows of `x` `[P, D]`.

  The first centre is a uniformly drawn point; centre j is point q with probability
  D(x_q)^2 / sum_p D(x_p)^2, D the distance to the nearest centre chosen so far (drawn
  by inverting the cumulative sum); uniform when every D is 0.
  """
  p = x.shape[0]
  first_key, rest_key = jax.random.split(key)
  first = jax.random.randint(first_key, (), 0, p)
  centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
  d2 = jnp.sum(jnp.square(x - x[first][None, :]), axis=-1)

  def add_centre(j, carry):
    centres, d2 = carry
    u_key, fallback_key = jax.random.split(jax.random.fold_in(rest_key, j))
    cumulative = jnp.cumsum(d2)
    total = cumulative[-1]
    drawn = jnp.searchsorted(cumulative, jax.random.uniform(u_key) * total, side="right")
    uniform = jax.random.randint(fallback_key, (), 0, p)
    index = jnp.where(total > 0, jnp.minimum(drawn, p - 1), uniform)
    centre = x[index]
    d2_centre = jnp.sum(jnp.square(x - centre[None, :]), axis=-1)
    return centres.at[j].set(centre), jnp.minimum(d2, d2_centre)

  centres, _ = lax.fori_loop(1, k, add_centre, (centres, d2))
  return centres


def lloyd(x: jax.Array, centres: jax.Array, iterations: int) -> KMeansResult:
  """`iterations` Lloyd steps from `centres` `[k, D]` on points `x` `[P, D]`, then an E-step."""
  k = centres.shape[0]

  def step(carry, _):
    centres, previous = carry
    d2 = squared_distances(x, centres)
    assign = jnp.argmin(d2, axis=-1).astype(jnp.int32)
    inertia = jnp.sum(jnp.min(d2, axis=-1))
    one_hot = jax.nn.one_hot(assign, k, dtype=x.dtype)                      # [P, k]
    counts = jnp.sum(one_hot, axis=0)
    means = (one_hot.T @ x) / jnp.maximum(counts, 1.0)[:, None]
    new = jnp.where(counts[:, None] > 0, means, centres)
    changed = jnp.any(assign != previous)
    return (new, assign), (inertia, jnp.sum(counts > 0).astype(jnp.int32), changed)

  start = (centres, jnp.full((x.shape[0],), -1, jnp.int32))
  (centres, _), (inertia_history, clusters_history, changed) = lax.scan(
      step, start, None, length=iterations)
  d2 = squared_distances(x, centres)
  assign = jnp.argmin(d2, axis=-1).astype(jnp.int32)
  # Assignments stop changing for good once they repeat (a fixed point), so the
  # iterations that changed something come first.
  return KMeansResult(centres, assign, jnp.sum(jnp.min(d2, axis=-1)), inertia_history,
                      clusters_history, jnp.sum(changed).astype(jnp.int32))


def kmeans(key: jax.Array, x: jax.Array, k: int, restarts: int = 5,
           iterations: int = 50) -> KMeansResult:
  """The best of `restarts` k-means++ + Lloyd runs on `x` `[P, D]` (lowest final inertia)."""
  def run(restart_key):
    return lloyd(x, kmeans_plus_plus(restart_key, x, k), iterations)

  runs = jax.vmap(run)(jax.random.split(key, restarts))
  best = jnp.argmin(runs.inertia)
  return jax.tree.map(lambda a: a[best], runs)


def segment_image(key, image, config: KMeansConfig) -> Segmentation:
  image = image.astype(jnp.float32)
  x = image.reshape(-1, image.shape[-1])
  result = kmeans(key, x, config.k, config.restarts, config.iterations)
  labels, n_labels = _loop.renumber(result.assignments.reshape(image.shape[:-1]), config.k)
  mean_distance = result.inertia_history / x.shape[0]
  history = common.make_history(mean_distance, {"inertia": mean_distance}, result.clusters_history)
  finite = common.all_finite(result.centres)
  return Segmentation(labels, n_labels, result.iterations, finite, history)


ENTRY = EntryPoints(segment_image, KMeansConfig)


def segment_one(key, image, config: KMeansConfig = KMeansConfig()) -> Segmentation:
  """k-means on the colours of one image `[*spatial, C_in]`.

  Args:
    key: PRNG key (typed or raw uint32[2]) for the k-means++ starts.
    image: `[H, W, C_in]` (or `[D, H, W, C_in]`), float.
    config: static `KMeansConfig`.

  Returns:
    `Segmentation`: labels `[*spatial]` renumbered 0..K-1 (K <= k non-empty clusters);
    `iterations` = Lloyd iterations until the assignments stopped changing; history
    `total` = terms["inertia"] = mean squared distance to the assigned centre `[T]`
    (iteration t's E-step) and `n_labels` = non-empty clusters `[T]`, of the winning start.
  """
  return ENTRY.segment_one(key, image, config)


def segment_batch(keys, images, config: KMeansConfig = KMeansConfig(), *,
                  batching: str | None = None, mesh=None) -> Segmentation:
  """`segment_one` over `images` `[B, *spatial, C_in]` with `keys` `[B]`, in one jit.

  `batching`: "vmap", "sequential" (`lax.map`) or None (`core.batching.default_batching()`);
  `mesh`: None or a device mesh to shard the batch over (`core.batching.EntryPoints.segment_batch`).
  """
  return ENTRY.segment_batch(keys, images, config, batching=batching, mesh=mesh)


# registered, with `ENTRY`, by `sgscn_jax.builtin_methods`
METHOD = Method(
    name="kmeans", title="k-means", core=segment_image, default_config=KMeansConfig(),
    quick_config=KMeansConfig(restarts=1, iterations=5),
    description="k-means++ and Lloyd on pixel colours")
