"""The one configuration of an SGSCN run: a frozen, hashable dataclass.

It is passed to the jitted functions as a static argument, so two runs with equal
configurations share one compiled program. Defaults are those of the published code
(Ahn, Feng, Kim, MICCAI 2021) except where the published code is broken; each such
departure is said at its field.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

# The published total loss is 1 * L_ce + 5 * L_ss + 1 * L_cc. The published L_cc is
# broken (see `losses.context_consistency_loss`), so ours has its own default weight.
DEFAULT_LOSS_WEIGHTS: Tuple[Tuple[str, float], ...] = (
    ("cross_entropy", 1.0),
    ("sparse_spatial", 5.0),
    ("context_consistency", 1.0),
)


PADDINGS = ("zeros", "reflect")
ARCHITECTURES = ("sgscn", "s3net")
STOP_RULES = ("min_labels", "stable", "either")


@dataclasses.dataclass(frozen=True)
class Config:
  """Settings of the per-image optimisation.

  Attributes:
    n_channels: channels of every layer and of the response map S; the maximum number
      of clusters (published: 100).
    n_conv: number of 3x3 `conv -> ReLU -> BN` blocks before the final `conv 1x1 -> BN`
      (published: 2).
    learning_rate: SGD learning rate (published: 0.1; the paper uses 0.05 for ultrasound).
    momentum: SGD momentum (published: 0.9).
    iterations: maximum number of update steps per image (published: 50).
    min_labels: stop an image once the argmax of its *pre-update* response has at most
      this many distinct labels (published: 3). Used only when `early_stop` is true.
    early_stop: stop each image at `min_labels` (a `lax.while_loop`); if false every image
      runs exactly `iterations` steps (a `lax.fori_loop`).
    loss_weights: `(name, weight)` pairs; the total loss is
      `sum(weight * LOSS_TERMS[name](response, image, coordinates))`. A term with weight 0
      is not computed. Register a new term with `losses.register_loss_term`.
    bn_epsilon: BatchNorm epsilon (PyTorch's default, 1e-5).
    stop_rule: with `early_stop`, when an image stops: "min_labels" (the published code:
      the pre-update argmax has at most `min_labels` labels), "stable" (the paper's "until
      the clustering is stable": the share of pixels whose pre-update argmax changed since
      the previous iteration is at most `stable_fraction` for `stable_iterations`
      consecutive iterations) or "either" (whichever fires first). `iterations` is the cap.
    stable_fraction: see `stop_rule`.
    stable_iterations: see `stop_rule`.
    padding: "zeros" (the published code: every 3x3 convolution zero-pads, which gives the
      label maps a frame one pixel wide of clusters of their own) or "reflect" (mirrored
      borders; `layers.SpatialConv`).
    schedule: a coarse-to-fine schedule, `((scale, n), ...)`: the first stages run `n`
      iterations each on the image resized by `scale` (0 < scale < 1, every axis; the
      network is fully convolutional, so parameters and optimiser state carry over), the
      remaining `iterations - sum(n)` run at full resolution. Each stage has its own
      budget: it ends after its iterations or when the stop rule fires (the next stage then
      starts; only the last one ends the run), and a stage that stops early does not pass
      its unused iterations on, so a run never does more full-resolution iterations than
      `iterations - sum(n)`.
      Empty (the default): today's flat loop, bit for bit.
    architecture: the network F: "sgscn" (the published SGSCN/Kim et al. network,
      `network.ResponseNetwork`) or "s3net" (S3-Net's network, `s3net.S3Net`, 2D only:
      a stem conv, `n_conv` Inception large-kernel attention blocks, a deformable conv, a
      main head S and an auxiliary head used by L_AT; see docs/S3NET.md).
    deform_offset_bound: S3-Net's deformable convolution: None (the exact v1 of Dai et al.,
      offsets unbounded, bilinear gathers) or R > 0, the bounded-offset form (a departure:
      offsets R tanh(raw / R), the read a fused sum of fixed shifts, `s3net.
      bounded_deformable_conv`; docs/S3NET.md). Ignored by the SGSCN network.
  """

  n_channels: int = 100
  n_conv: int = 2
  learning_rate: float = 0.1
  momentum: float = 0.9
  iterations: int = 50
  min_labels: int = 3
  early_stop: bool = True
  loss_weights: Tuple[Tuple[str, float], ...] = DEFAULT_LOSS_WEIGHTS
  bn_epsilon: float = 1e-5
  padding: str = "zeros"
  stop_rule: str = "min_labels"
  stable_fraction: float = 0.01
  stable_iterations: int = 3
  schedule: Tuple[Tuple[float, int], ...] = ()
  architecture: str = "sgscn"
  deform_offset_bound: Optional[float] = None

  def __post_init__(self):
    if self.deform_offset_bound is not None:
      if not self.deform_offset_bound > 0:
        raise ValueError("deform_offset_bound must be None (exact v1) or > 0, got "
                         f"{self.deform_offset_bound!r}")
      object.__setattr__(self, "deform_offset_bound", float(self.deform_offset_bound))
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
    if self.stop_rule not in STOP_RULES:
      raise ValueError(f"stop_rule must be one of {STOP_RULES}, got {self.stop_rule!r}")
    if not 0 <= self.stable_fraction <= 1 or self.stable_iterations < 1:
      raise ValueError("stable_fraction must lie in [0, 1] and stable_iterations be >= 1")
    if self.padding not in PADDINGS:
      raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
    if self.n_channels < 2:
      raise ValueError(f"n_channels must be >= 2, got {self.n_channels}")
    if self.n_conv < 1:
      raise ValueError(f"n_conv must be >= 1, got {self.n_conv}")
    if self.iterations < 0:
      raise ValueError(f"iterations must be >= 0, got {self.iterations}")
    if self.min_labels < 1:
      raise ValueError(f"min_labels must be >= 1, got {self.min_labels}")
    schedule = tuple((float(a), int(n)) for a, n in self.schedule)
    if any(not 0 < a < 1 or n < 1 for a, n in schedule):
      raise ValueError(f"schedule: every stage needs 0 < scale < 1 and >= 1 iterations, "
                       f"got {self.schedule!r}")
    if sum(n for _, n in schedule) >= max(self.iterations, 1):
      raise ValueError(f"schedule: the coarse stages ({sum(n for _, n in schedule)} "
                       f"iterations) must leave at least one of the {self.iterations} "
                       f"iterations for full resolution")
    object.__setattr__(self, "schedule", schedule)
    # Accept a dict for convenience; store a hashable tuple.
    weights = self.loss_weights
    if isinstance(weights, dict):
      weights = tuple(weights.items())
    weights = tuple((str(n), float(w)) for n, w in weights)
    names = [n for n, _ in weights]
    if len(set(names)) != len(names):
      raise ValueError(f"loss_weights names a term twice: {names}")
    object.__setattr__(self, "loss_weights", weights)

  @property
  def active_terms(self) -> Tuple[Tuple[str, float], ...]:
    """The `(name, weight)` pairs with a non-zero weight, in configuration order."""
    return tuple((n, w) for n, w in self.loss_weights if w != 0.0)

  def with_weights(self, **weights: float) -> "Config":
    """A copy with some loss weights changed or added, e.g. `with_weights(sparse_spatial=1)`."""
    merged = dict(self.loss_weights)
    merged.update(weights)
    return dataclasses.replace(self, loss_weights=tuple(merged.items()))


def parse_schedule(text: str) -> Tuple[Tuple[float, int], ...]:
  """A `Config.schedule` from its command-line form: "" (flat) or "scale:n,scale:n", e.g.
  "0.5:30" (30 iterations at half resolution, the rest at full)."""
  stages = []
  for part in filter(None, (p.strip() for p in (text or "").split(","))):
    try:
      scale, n = part.split(":")
      stages.append((float(scale), int(n)))
    except ValueError:
      raise ValueError(f"schedule: expected stages like 0.5:30 separated by commas, "
                       f"got {part!r} in {text!r}") from None
  return tuple(stages)


def config_from_text(text: str, base: Config = Config()) -> Config:
  """`base` with fields replaced from `field:value,...` (e.g. "stop_rule:either,
  schedule:0.25:20+0.5:10": a schedule's stages joined by '+'); "" gives `base`."""
  names = {f.name: f for f in dataclasses.fields(Config)}
  fields = {}
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, _, value = part.partition(":")
    if name not in names or name == "loss_weights":
      raise ValueError(f"Config has no field {name!r} settable from text (in {text!r})")
    if name == "schedule":
      fields[name] = parse_schedule(value.replace("+", ","))
    elif name == "deform_offset_bound":
      fields[name] = None if value.lower() in ("", "none", "0") else float(value)
    else:
      kind = type(getattr(base, name))
      fields[name] = value.lower() in ("1", "true") if kind is bool else kind(value)
  return dataclasses.replace(base, **fields)
