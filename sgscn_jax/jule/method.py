"""JULE on one image or volume (Yang et al., CVPR 2016; in 3D, Moriya et al., SPIE MI 2018):
the alternation, the final voxel labelling, the registered method and its memory plan.

    image [*N, C] --standardise, pad by the halo--> padded
      centres (grid + random, `patches.sample_centres`) --> patches P [n, *extent, C]
      period 0: raw patches (centre-weighted) --k-NN graph--> initial clusters (1-NN components)
      repeat (one "unrolled period"):
        backward: `epochs_per_period` epochs of SGD on the weighted triplet loss of random
                  batches of P, the current clusters as labels (`triplet`)
        forward:  embed P with the CNN --k-NN graph W--> ceil(eta K) graph-degree-linkage
                  merges (`agglomerate`), never below `target_clusters`
      until K = target_clusters
      every voxel's patch embedding (one dense pass of the CNN, in slabs) --k-means, k-->
      labels [*N]

The alternation is a host loop (the agglomeration is NumPy/SciPy); each SGD step is one jitted
call on a batch of patch indices (fixed shapes: one compile per run), and the embeddings of
the patches and of the dense pass are jitted and batched. Randomness: one NumPy generator
seeded from the key (patch centres, batch order) and two JAX keys split from it (the CNN's
initialisation, k-means): the same key gives the same labels.

JULE's values (`train.lua` of jwyang/JULE.torch): K_s = 20, K_c = 5, lambda = 1, eta = 0.9,
margin 0.2, gamma 1, SGD lr 0.01 with momentum 0.9, weight decay 5e-5 and the "inv" decay
lr_t = lr (1 + 1e-4 t)^-0.75. Choices where JULE and Moriya et al. differ from this or say
nothing are listed in docs/JULE.md (patch geometry, epochs per period, the first clustering's
features, the network).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgscn_jax.core.loop import History, Segmentation, as_key, check_image
from sgscn_jax.data.decode import standardise
from sgscn_jax.data import foreground
from sgscn_jax.jule import agglomerate, labelling, network, patches, triplet
from sgscn_jax.registry import Method
from sgscn_jax.volume import memory


@dataclasses.dataclass(frozen=True)
class JuleConfig:
  """Settings of JULE (module docstring; docs/JULE.md).

  Attributes:
    k: clusters of the final k-means on every voxel's feature (`jule:4`).
    target_clusters: where the agglomeration stops (0: k).
    patch_size: odd patch extent along the finest axis (coarser axes: fewer voxels).
    n_patches: patches the CNN and the clustering see (half on a grid, `grid_share`).
    grid_share: share of the patches centred on a strided grid; the rest at random.
    channels: channels of each convolution.
    embed_dim: length of the (unit) embedding.
    centre_skip: the head also reads the centre voxel's values (`network`; not in JULE).
    k_s: neighbours of the sample affinity graph (JULE 20).
    k_c: clusters in the merge score (JULE 5).
    lam: lambda of the merge score (JULE 1).
    eta: unrolling rate, the share of clusters merged per period (JULE 0.9 or 0.2).
    epochs_per_period: SGD epochs over the patches per period (JULE 20).
    final_epochs: SGD epochs on the target clusters once reached (JULE: none), so that the
      features the final k-means sees are trained on the clusters it should find.
    batch_size: patches per SGD step (JULE 100).
    learning_rate, momentum, weight_decay, lr_gamma, lr_power: SGD and its "inv" decay.
    margin, gamma: of the weighted triplet loss (JULE 0.2, 1).
    centre_sigma: Gaussian weight (voxels) on the raw patches of the first clustering.
    kmeans_restarts, kmeans_iterations: of the final k-means.
    intensity_weight: w of the final features [f, w z]: the voxel's own standardised values
      beside its learnt embedding (`labelling`; 0: the embedding alone, Moriya et al.).
    mrf: beta of the Potts prior on the final labels (`volume.mrf.potts_icm`; 0: none).
    mrf_iterations: ICM sweeps.
    foreground: with no mask given, cluster inside `data.foreground.foreground_mask` of the
      image (patches centred there, k-means and labels there; 0 outside). A given mask
      (`segment(..., mask=)`: a data set's own) is always used.
    slab_voxels: voxels per slab of the dense pass (memory).
    progress: one line per period on stderr.
  """
  k: int = 4
  target_clusters: int = 0
  patch_size: int = 5
  n_patches: int = 3000
  grid_share: float = 0.5
  channels: int = 32
  embed_dim: int = 32
  centre_skip: bool = True
  k_s: int = 20
  k_c: int = 5
  lam: float = 1.0
  eta: float = 0.9
  epochs_per_period: int = 5
  final_epochs: int = 5
  batch_size: int = 128
  learning_rate: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 5e-5
  lr_gamma: float = 1e-4
  lr_power: float = 0.75
  margin: float = 0.2
  gamma: float = 1.0
  centre_sigma: float = 1.0
  kmeans_restarts: int = 5
  kmeans_iterations: int = 50
  intensity_weight: float = 4.0
  mrf: float = 1.0
  mrf_iterations: int = 5
  foreground: bool = False
  slab_voxels: int = 1_000_000
  progress: bool = True

  def __post_init__(self):
    if self.k < 1:
      raise ValueError(f"k must be >= 1, got {self.k}")
    if self.patch_size < 3 or self.patch_size % 2 == 0:
      raise ValueError(f"patch_size must be odd and >= 3, got {self.patch_size}")
    if self.n_patches < 4:
      raise ValueError(f"n_patches must be >= 4, got {self.n_patches}")
    if not 0.0 < self.eta <= 1.0:
      raise ValueError(f"eta must be in (0, 1], got {self.eta}")
    if self.k_c < 1 or self.k_s < 1 or self.batch_size < 3:
      raise ValueError("k_c, k_s must be >= 1 and batch_size >= 3")
    if self.intensity_weight < 0 or self.mrf < 0 or self.mrf_iterations < 1:
      raise ValueError("intensity_weight and mrf must be >= 0, mrf_iterations >= 1")

  @property
  def target(self) -> int:
    return self.target_clusters or self.k


def _optimiser(config: JuleConfig):
  schedule = lambda t: config.learning_rate * (1.0 + config.lr_gamma * t) ** (-config.lr_power)  # noqa: E731
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.sgd(schedule, momentum=config.momentum))


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0, 1))
def _train_step(params, opt_state, all_patches, all_labels, index, valid, config: JuleConfig):
  """One SGD step on the batch `all_patches[index]` `[B, *extent, C]` (`valid` `[B]`)."""
  def loss_fn(p):
    f = network.embed_patches(p, all_patches[index])
    return triplet.weighted_triplet_loss(f, all_labels[index], valid, config.margin,
                                         config.gamma)
  (loss, count), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, opt_state = _optimiser(config).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, count


_embed_patches = jax.jit(network.embed_patches)
_embed_dense = jax.jit(network.embed_dense)


def embed_all(params, all_patches: jax.Array, batch: int = 1024) -> np.ndarray:
  """Embeddings `[n, E]` of every patch, in fixed-size batches (one compile)."""
  n = all_patches.shape[0]
  batch = min(batch, n)
  out = []
  for start in range(0, n, batch):
    index = np.minimum(np.arange(start, start + batch), n - 1)
    out.append(np.asarray(_embed_patches(params, all_patches[index]))[:min(batch, n - start)])
  return np.concatenate(out)


def dense_features(params, padded: np.ndarray, halo: Sequence[int], spatial: Sequence[int],
                   slab_voxels: int) -> np.ndarray:
  """Every voxel's patch embedding `[*spatial, E]`, slab by slab along axis 0 (each slab the
  same shape: one compile; the last one reads past the end into edge padding, discarded)."""
  plane = math.prod(spatial[1:])
  depth = int(max(1, min(spatial[0], slab_voxels // max(plane, 1))))
  h0 = halo[0]
  extra = depth - (spatial[0] % depth or depth)
  padded = np.pad(padded, [(0, extra)] + [(0, 0)] * (padded.ndim - 1), mode="edge")
  out = []
  for start in range(0, spatial[0], depth):
    slab = padded[start:start + depth + 2 * h0]
    out.append(np.asarray(_embed_dense(params, jnp.asarray(slab))))
  return np.concatenate(out)[:spatial[0]]


def _train(params, opt_state, device_patches, labels: np.ndarray, rng: np.random.Generator,
           config: JuleConfig, epochs: int):
  """`epochs` epochs of SGD over the patches in random batches (the last one padded, masked);
  returns `(params, opt_state, mean loss, mean triplets per step, steps)`."""
  n = device_patches.shape[0]
  batch = min(config.batch_size, n)
  device_labels = jnp.asarray(labels, jnp.int32)
  losses, counts = [], []
  for _ in range(epochs):
    order = rng.permutation(n)
    for b0 in range(0, n, batch):
      index = order[b0:b0 + batch]
      valid = np.arange(batch) < index.size
      index = np.concatenate([index, np.zeros(batch - index.size, index.dtype)])
      params, opt_state, loss, count = _train_step(
          params, opt_state, device_patches, device_labels, jnp.asarray(index),
          jnp.asarray(valid), config)
      losses.append(loss)
      counts.append(count)
  if not losses:
    return params, opt_state, float("nan"), 0.0, 0
  return (params, opt_state, float(np.mean(jax.device_get(losses))),
          float(np.mean(jax.device_get(counts))), len(losses))


def _rng(key) -> np.random.Generator:
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint64).ravel())


def _say(config: JuleConfig, text: str) -> None:
  if config.progress:
    print(f"jule: {text}", file=sys.stderr, flush=True)


def segment(key, image, config: JuleConfig = JuleConfig(), spacing=None,
            mask=None) -> Segmentation:
  """JULE on one image `[H, W, C]` or volume `[D, H, W, C]` (module docstring).

  Args:
    key: PRNG key (typed or raw).
    image: float, `[*spatial, C_in]`.
    config: the settings.
    spacing: voxel size per spatial axis (patch geometry), or None (isotropic).
    mask: `[*spatial]` bool, the foreground to cluster (a data set's own), or None
      (`config.foreground`: the image's own foreground mask; else every voxel).

  Returns:
    A `Segmentation` with NumPy fields: labels `[*spatial]` int32 0..K-1 (with a mask: 0
    outside, 1..K inside), n_labels,
    iterations (SGD steps), finite, history (per period: mean triplet loss as `total`,
    `triplets` per step, clusters after the period's merges as `n_labels`).
  """
  check_image(image)
  key = as_key(key)
  rng = _rng(key)
  init_key, kmeans_key = jax.random.split(key)
  image = np.asarray(image, np.float32)
  if mask is None and config.foreground:
    mask = foreground.foreground_mask(image, spacing)
  if mask is not None:
    mask = np.asarray(mask, bool)
    if mask.shape != image.shape[:-1] or not mask.any():
      raise ValueError(f"mask {mask.shape} must be a non-empty [*spatial] of the image "
                       f"{image.shape}")
  x = standardise(image) if mask is None else foreground.masked_standardise(image, mask)
  spatial, c_in = x.shape[:-1], x.shape[-1]
  taps = patches.layer_taps(config.patch_size, spacing, len(spatial))
  halo, ext = patches.halo(taps), patches.extent(taps)
  padded = patches.pad(x, halo)
  centres = patches.sample_centres(rng, spatial, config.n_patches, config.grid_share, mask)
  all_patches = patches.extract(padded, centres, ext)          # [n, *ext, C]
  n = all_patches.shape[0]
  window = patches.centre_window(ext, config.centre_sigma)[..., None]
  w, nn1 = agglomerate.sample_affinity((all_patches * window).reshape(n, -1), config.k_s)
  labels = agglomerate.initial_clusters(nn1)
  target = min(config.target, n)
  _say(config, f"{n} patches of {'x'.join(map(str, ext))} voxels, {labels.max() + 1} initial "
               f"clusters, target {target}")
  params = network.init(init_key, taps, c_in, config.channels, config.embed_dim,
                        config.centre_skip)
  opt_state = _optimiser(config).init(params)
  device_patches = jnp.asarray(all_patches)
  steps, finite = 0, True
  losses, triplets, clusters = [], [], []
  while True:
    start = time.perf_counter()
    params, opt_state, loss, count, n_steps = _train(params, opt_state, device_patches,
                                                     labels, rng, config,
                                                     config.epochs_per_period)
    steps += n_steps
    finite = finite and bool(np.isfinite(loss))
    before = int(labels.max()) + 1
    features = embed_all(params, device_patches)         # forward pass: merge clusters
    w, _ = agglomerate.sample_affinity(features, config.k_s)
    merges = agglomerate.merges_for_period(before, target, config.eta)
    labels = agglomerate.agglomerate(w, labels, merges, config.k_c, config.lam)
    losses.append(loss)
    triplets.append(count)
    clusters.append(int(labels.max()) + 1)
    _say(config, f"period {len(losses)}: triplet loss {losses[-1]:.4f} "
                 f"({triplets[-1]:.0f} triplets per step), {before} -> {clusters[-1]} clusters, "
                 f"{time.perf_counter() - start:.1f} s")
    if clusters[-1] <= target or merges == 0:
      break
  if config.final_epochs:                                # the target clusters as labels
    start = time.perf_counter()
    params, opt_state, loss, count, n_steps = _train(params, opt_state, device_patches,
                                                     labels, rng, config, config.final_epochs)
    steps += n_steps
    finite = finite and bool(np.isfinite(loss))
    losses.append(loss)
    triplets.append(count)
    clusters.append(clusters[-1])
    _say(config, f"final: triplet loss {loss:.4f} on the {clusters[-1]} clusters, "
                 f"{time.perf_counter() - start:.1f} s")
  start = time.perf_counter()
  dense = dense_features(params, padded, halo, spatial, config.slab_voxels)
  features = labelling.voxel_features(dense, x, config.intensity_weight)
  out = labelling.cluster_voxels(kmeans_key, features, config.k, config.kmeans_restarts,
                                 config.kmeans_iterations, mask, config.mrf,
                                 config.mrf_iterations, spacing)
  n_out = int(np.unique(out if mask is None else out[mask]).size)
  _say(config, f"dense features and k-means (k = {config.k}"
               + (f", Potts beta {config.mrf:g}" if config.mrf else "")
               + f"): {time.perf_counter() - start:.1f} s")
  history = History(total=np.asarray(losses, np.float32),
                    terms={"triplet": np.asarray(losses, np.float32),
                           "triplets_per_step": np.asarray(triplets, np.float32)},
                    n_labels=np.asarray(clusters, np.int32))
  return Segmentation(out, np.int32(n_out + (mask is not None)), np.int32(steps),
                      np.bool_(finite and np.all(np.isfinite(dense))), history)


class JuleEntryPoints:
  """`segment_one` / `segment_batch` of JULE, image by image on the host loop (the key is
  used, unlike `core.host.HostEntryPoints`); `spacing` reaches the patch geometry."""

  def __init__(self, compiler_options=None):
    del compiler_options

  @staticmethod
  def _check(config) -> None:
    if not isinstance(config, JuleConfig):
      raise TypeError(f"expected a JuleConfig, got {type(config).__name__}")

  def segment_one(self, key, image, config, *, spacing=None, mask=None,
                  **unused) -> Segmentation:
    del unused
    self._check(config)
    return segment(key, image, config, spacing=spacing, mask=mask)

  def segment_batch(self, keys, images, config, *, spacing=None, mask=None,
                    **unused) -> Segmentation:
    del unused
    self._check(config)
    if np.ndim(images) < 1 or len(keys) != np.shape(images)[0]:
      raise ValueError(f"keys: expected {np.shape(images)[0]} keys (one per image)")
    spacing = None if spacing is None else np.asarray(spacing, np.float64)
    runs = [segment(keys[b], images[b], config,
                    spacing=None if spacing is None else
                    (spacing[b] if spacing.ndim == 2 else spacing),
                    mask=None if mask is None else np.asarray(mask)[b])
            for b in range(np.shape(images)[0])]
    history = None
    if len(runs) == 1:
      history = jax.tree.map(lambda a: np.asarray(a)[None], runs[0].history)
    return Segmentation(np.stack([r.labels for r in runs]), np.stack([r.n_labels for r in runs]),
                        np.stack([r.iterations for r in runs]),
                        np.stack([r.finite for r in runs]), history)


# Memory model (bytes), per the module docstring of `volume.memory`: M_0 (runtime and compiled
# programs) plus the arrays alive at the peak, the dense pass and k-means on every voxel.
def estimate_bytes(work_shape: Sequence[int], c_in: int, config: JuleConfig,
                   spacing=None) -> int:
  """Peak bytes of one JULE run on a working image `work_shape`:

      M_0 + 4 V (3 C_in + 2 E + 2 k R + 8)                 volume copies, features, k-means
          + 4 min(V, slab) (3 C + E)                       the dense pass's activations
          + 8 n (3 K_0 + patch C_in) + 8 * 3 K_0^2         U, V, patches; a, A, merge state
          + 4 * 4 B^3                                      the triplet tensor and its gradient
          + 4 V (E + C_in)                                 the final features [f, w z]
          + [mrf > 0] V (8 (E + C_in) + 4 (3 k + 2))       the Potts ICM: a float64 copy,
                                                           energies, votes, labels

  (V voxels, n patches, K_0 <= n / 2 initial clusters, R restarts, B batch.)
  """
  v = math.prod(int(s) for s in work_shape)
  n = min(config.n_patches, v)
  k0 = n // 2
  ext = patches.extent(patches.layer_taps(config.patch_size, spacing, len(work_shape)))
  patch = math.prod(ext) * c_in
  b = min(config.batch_size, n)
  total = (memory.BASE_BYTES
           + 4.0 * v * (3 * c_in + 2 * config.embed_dim + 2 * config.k * config.kmeans_restarts
                        + 8)
           + 4.0 * min(v, config.slab_voxels) * (3 * config.channels + config.embed_dim)
           + 8.0 * n * (3 * k0 + patch) + 8.0 * 3 * k0 * k0
           + 4.0 * 4 * b ** 3
           + 4.0 * v * (config.embed_dim + c_in))
  if config.mrf > 0:
    total += v * (8.0 * (config.embed_dim + c_in) + 4.0 * (3 * config.k + 2))
  return int(total)


def estimate_seconds(work_shape: Sequence[int], c_in: int, config: JuleConfig,
                     spacing=None) -> float:
  """Forward FLOPs of the dense pass and k-means, 3x those of the SGD steps (assuming three
  periods), at `memory.FLOPS_PER_SECOND`."""
  taps = patches.layer_taps(config.patch_size, spacing, len(work_shape))
  per_voxel = 0.0
  c = c_in
  for t in taps:
    per_voxel += 2.0 * math.prod(t) * c * config.channels
    c = config.channels
  per_voxel += 2.0 * c * config.embed_dim
  v = math.prod(int(s) for s in work_shape)
  n = min(config.n_patches, v)
  ext = patches.extent(taps)
  train = 3 * config.epochs_per_period * n * 3.0 * per_voxel * math.prod(ext)
  dense = v * per_voxel
  km = config.kmeans_restarts * config.kmeans_iterations * v * config.k * config.embed_dim * 4.0
  return (train + dense + km) / memory.FLOPS_PER_SECOND


def plan_memory(shape: Sequence[int], c_in: int, config: JuleConfig, *, spacing=None,
                factor: Optional[int] = None, memory_limit=None,
                time_limit: Optional[float] = None) -> memory.Plan:
  """The first working resolution (factor 1, 2, 3, 4, 6, 8, or the one given) whose
  `estimate_bytes` fits the budget (and `time_limit`); a fixed factor that does not fit is
  refused with a `memory.MemoryBudgetError` naming the factors and patch counts that would."""
  budget = (memory.parse_bytes(memory_limit) if memory_limit is not None
            else int(memory.SAFETY * memory.available_bytes()))

  def plan_at(f: int, cfg: JuleConfig) -> memory.Plan:
    factors = memory.factors_for(spacing, f, len(shape))
    work = memory.factor_shape(shape, factors)
    work_spacing = (None if spacing is None else
                    tuple(float(s) * a / b for s, a, b in zip(spacing, shape, work)))
    return memory.Plan("3d" if len(shape) == 3 else "2d", f, factors, work, cfg.channels,
                       estimate_bytes(work, c_in, cfg, work_spacing), budget,
                       estimate_seconds(work, c_in, cfg, work_spacing),
                       "fixed" if factor is not None else "auto")

  def fits(p: memory.Plan) -> bool:
    return p.estimated_bytes <= budget and (time_limit is None or
                                            p.estimated_seconds <= time_limit)

  for f in (memory.FACTORS if factor is None else (int(factor),)):
    p = plan_at(f, config)
    if fits(p):
      return p
  requested = plan_at(memory.FACTORS[0] if factor is None else int(factor), config)
  named = []
  for f in memory.FACTORS:
    for n in sorted({config.n_patches, 2000, 1000}, reverse=True):
      p = plan_at(f, dataclasses.replace(config, n_patches=min(n, config.n_patches)))
      if fits(p):
        named.append(f"--factor {f} --method_options n_patches={min(n, config.n_patches)} "
                     f"({'x'.join(map(str, p.work_shape))}, ~{p.estimated_bytes / 1e9:.1f} GB)")
        break
    if len(named) == 3:
      break
  raise memory.MemoryBudgetError(
      f"refusing to start: jule at {'x'.join(map(str, requested.work_shape))} with "
      f"{config.n_patches} patches needs about {requested.estimated_bytes / 1e9:.1f} GB "
      f"(~{requested.estimated_seconds:.0f} s), over the {budget / 1e9:.1f} GB memory budget"
      + (f" or the {time_limit:.0f} s time limit" if time_limit is not None else "") + ". "
      + ("Settings that would fit: " + "; ".join(named) if named else
         "No setting fits; free memory or raise --memory_limit."))


METHOD = Method(
    name="jule", title="JULE", core=segment, default_config=JuleConfig(),
    quick_config=JuleConfig(n_patches=96, channels=8, embed_dim=8, epochs_per_period=1,
                            batch_size=32, kmeans_restarts=1, kmeans_iterations=10,
                            progress=False),
    spacing=True, host=True, make_entry_points=JuleEntryPoints, plan_memory=plan_memory,
    description="JULE's patch features learnt with agglomerative clustering, then k-means "
                "(Yang et al., CVPR 2016; 3D: Moriya et al., SPIE MI 2018)")
