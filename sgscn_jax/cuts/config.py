"""The settings of CUTS, one frozen (hashable) dataclass: a static argument of `jax.jit`.

Defaults follow the public CUTS code where it states them (KrishnaswamyLab/CUTS,
`config/retina_seed1.yaml`, `src/model/CUTS_model.py`, `src/utils/losses.py`): 16 kernels
(channels 16, 32, 64, 128), 5x5 convolutions, a 5x5 reconstructed patch, positives within 5
pixels accepted at patch SSIM > 0.5 (20 tries), NT-Xent temperature 0.1, loss
`lambda * contrastive + (1 - lambda) * reconstruction` with lambda = 0.001, AdamW lr 1e-3
and weight decay 1e-4 with a linear warm-up and cosine decay. Our own choices (departures,
docs/CUTS.md): the number of steps and patches per step (a fixed budget of patch batches
instead of 200 epochs over whole images), per-pixel layer norm instead of batch norm, and
every condensation setting.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CutsConfig:
  """CUTS: the encoder and its fit, then the per-image diffusion condensation.

  Attributes:
    num_kernels: channels of the first conv; the four convs have 1, 2, 4, 8 times this.
    kernel_size: side of every conv kernel (odd).
    patch_size: side of the patch each anchor's embedding reconstructs (odd).
    positive_radius: a positive is drawn at offsets in [-r, r) from its anchor.
    ssim_threshold: a positive candidate is accepted when its patch SSIM with the anchor's
      patch exceeds this.
    positive_attempts: candidates drawn per anchor; none accepted: the diagonal neighbour
      towards the image centre.
    temperature: NT-Xent temperature tau.
    contrastive_weight: lambda in `lambda L_con + (1 - lambda) L_rec`.
    learning_rate, weight_decay, warmup_fraction: AdamW with a linear warm-up (from 1e-3 of
      the rate) over this share of the steps, then cosine decay to 0.
    steps: optimisation steps of the fit.
    images_per_step: images drawn (with replacement) per step.
    anchors_per_image: anchors per drawn image; the contrastive loss is within each image.
    steps_per_call: steps per jitted call (the progress bar moves between calls).
    subsample: pixels per image that are condensed; the others take the labels of their
      nearest subsampled pixel in embedding space.
    knn: the initial bandwidth is the median squared distance to the knn-th neighbour.
    bandwidth_growth: the bandwidth epsilon is multiplied by this after every step.
    merge_distance: points closer than this (embeddings on the unit sphere) are merged.
    max_condensation_steps: the condensation stops here if more than one point is left.
    max_clusters: levels with more clusters than this are not kept (too fine to be a
      segmentation).
    max_levels: at most this many levels are kept per image (the most persistent ones).
    level_rule: the mask-free level: "finest" (the finest level kept: the most clusters up
      to `max_clusters`; chosen on PH2 seed 0, docs/CUTS.md) or "persistent" (the level of 2
      or more clusters that lasts the most condensation steps).
  """
  num_kernels: int = 16
  kernel_size: int = 5
  patch_size: int = 5
  positive_radius: int = 5
  ssim_threshold: float = 0.5
  positive_attempts: int = 20
  temperature: float = 0.1
  contrastive_weight: float = 0.001
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  warmup_fraction: float = 0.05
  steps: int = 600
  images_per_step: int = 16
  anchors_per_image: int = 8
  steps_per_call: int = 25
  subsample: int = 1500
  knn: int = 10
  bandwidth_growth: float = 1.15
  merge_distance: float = 0.02
  max_condensation_steps: int = 400
  max_clusters: int = 20
  max_levels: int = 12
  level_rule: str = "finest"

  def __post_init__(self):
    if self.kernel_size % 2 != 1 or self.patch_size % 2 != 1:
      raise ValueError("cuts: kernel_size and patch_size must be odd")
    if self.level_rule not in LEVEL_RULES:
      raise ValueError(f"cuts: level_rule must be one of {LEVEL_RULES}, got "
                       f"{self.level_rule!r}")
    if self.anchors_per_image < 2:
      raise ValueError("cuts: anchors_per_image must be >= 2 (the negatives are the others)")

  def fit_settings(self) -> dict:
    """The fields the fit depends on (a fitted state is reused when these match, whatever
    the condensation and level settings)."""
    return {f: getattr(self, f) for f in FIT_FIELDS}

  @property
  def receptive_radius(self) -> int:
    """R = 4 (k // 2): an embedding depends on the (2R + 1)^2 window around its pixel."""
    return 4 * (self.kernel_size // 2)


LEVEL_RULES = ("finest", "persistent")
FIT_FIELDS = ("num_kernels", "kernel_size", "patch_size", "positive_radius", "ssim_threshold",
              "positive_attempts", "temperature", "contrastive_weight", "learning_rate",
              "weight_decay", "warmup_fraction", "steps", "images_per_step", "anchors_per_image")

QUICK = CutsConfig(num_kernels=2, steps=4, images_per_step=2, anchors_per_image=4,
                   steps_per_call=2, subsample=200, max_condensation_steps=120)
