"""The settings of distil, one frozen (hashable) dataclass: a static argument of `jax.jit`.

Distil trains one segmentation network (the student, a small U-Net) on a whole data set
with a teacher's mask-free objects as its only targets (self-training on pseudo-labels).
The defaults are our own choices (docs/DISTIL.md): a teacher that needs no network
(Otsu on the blue channel), a 4-level U-Net of width 16 (about 2.2 M parameters) trained
at 128 x 128 for 600 steps of 8 images, AdamW (lr 1e-3, weight decay 1e-4) with a linear
warm-up over 5 % of the steps and cosine decay, every augmentation on, BCE + soft Dice
weighted by the teacher's confidence, one round, threshold 1/2, one view at inference
(`tta="flips"` averages 4 views at 4x the cost).
"""

from __future__ import annotations

import dataclasses

LOSSES = ("ce", "dice", "ce+dice")
TTA = ("none", "flips", "dihedral")


@dataclasses.dataclass(frozen=True)
class DistilConfig:
  """A teacher, a student and its training, then the per-image inference.

  Attributes:
    teacher: the teacher's method spec in the project's method grammar: a registered
      method (`otsu_blue`, `kmeans:5`, `cuts`) or a vote (`vote:sgscn+kmeans:5+otsu_blue`),
      each with its default config (its quick config with `teacher_quick`).
    teacher_seeds: E runs of the teacher per image (keys `fold_in(image key, e)`); their
      objects (and a vote's members') are voted into the target and its share map.
    teacher_quick: the teacher's members run with their quick configs (smoke runs, tests).
    size: the student's side in pixels: every image is resized to `size` x `size` for
      training and inference (the probability map comes back to the image's shape);
      a multiple of 2^depth.
    width: channels of the U-Net's first level; level l has width 2^l.
    depth: poolings of the U-Net (levels below the first).
    steps: optimisation steps per round.
    batch_size: images per step (a multiple of the device count when sharded).
    learning_rate, weight_decay, warmup_fraction: AdamW; a linear warm-up from 0 over this
      share of the steps, then cosine decay to 0 (`optax.warmup_cosine_decay_schedule`).
    augment: the master switch of every augmentation below.
    flips: random horizontal and vertical flips.
    rotations: random rotations by multiples of 90 degrees.
    crop_scale: a square crop whose side is a fraction s ~ U(crop_scale, 1) of the image's,
      anywhere inside it, resampled back to `size` (1: no crops).
    brightness: x + b, b ~ U(-brightness, brightness).
    contrast: mean + c (x - mean), c ~ U(1 - contrast, 1 + contrast).
    hue: colours rotated about the grey axis by an angle ~ U(-hue, hue) (in turns: 0.05 =
      18 degrees; RGB images only).
    confidence: weight each pixel by the teacher's confidence w = |2 share - 1| (w = 1
      everywhere when off, and for one teacher run of one method).
    loss: "ce" (weighted binary cross-entropy), "dice" (weighted soft Dice) or "ce+dice".
    rounds: rounds of training; round r > 1 trains a fresh student on the previous
      student's dihedral-averaged probabilities (target p > 1/2, share p).
    threshold: the object is the probability above this.
    tta: averaged over "none", "flips" (4: identity, horizontal, vertical, both) or
      "dihedral" (8: flips and 90-degree rotations) at inference.
    keep_pieces: the object keeps its largest `keep_pieces` connected pieces (0: all).
    fill_holes: holes of the object are filled.
    log_every: a line on stderr every this many steps (0: silent).
  """
  teacher: str = "otsu_blue"
  teacher_seeds: int = 1
  teacher_quick: bool = False
  size: int = 128
  width: int = 16
  depth: int = 4
  steps: int = 600
  batch_size: int = 8
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  warmup_fraction: float = 0.05
  augment: bool = True
  flips: bool = True
  rotations: bool = True
  crop_scale: float = 0.6
  brightness: float = 0.1
  contrast: float = 0.2
  hue: float = 0.03
  confidence: bool = True
  loss: str = "ce+dice"
  rounds: int = 1
  threshold: float = 0.5
  tta: str = "none"
  keep_pieces: int = 1
  fill_holes: bool = True
  log_every: int = 50

  def __post_init__(self):
    if self.loss not in LOSSES:
      raise ValueError(f"distil: loss must be one of {LOSSES}, got {self.loss!r}")
    if self.tta not in TTA:
      raise ValueError(f"distil: tta must be one of {TTA}, got {self.tta!r}")
    if self.depth < 0 or self.width < 1 or self.size % (2 ** self.depth):
      raise ValueError(f"distil: size {self.size} must be a multiple of 2^depth = "
                       f"{2 ** self.depth} (width >= 1, depth >= 0)")
    if self.steps < 1 or self.batch_size < 1 or self.rounds < 1 or self.teacher_seeds < 1:
      raise ValueError("distil: steps, batch_size, rounds and teacher_seeds must be >= 1")
    if not 0 < self.crop_scale <= 1:
      raise ValueError(f"distil: crop_scale must be in (0, 1], got {self.crop_scale}")
    if not 0 < self.threshold < 1:
      raise ValueError(f"distil: threshold must be in (0, 1), got {self.threshold}")
    if self.keep_pieces < 0:
      raise ValueError("distil: keep_pieces must be >= 0 (0: every piece)")

  def fit_settings(self) -> dict:
    """The fields the fitted state depends on (a state is reused when these match, whatever
    the inference settings: threshold, tta, keep_pieces, fill_holes, log_every)."""
    return {f: getattr(self, f) for f in FIT_FIELDS}


INFERENCE_FIELDS = ("threshold", "tta", "keep_pieces", "fill_holes", "log_every")
FIT_FIELDS = tuple(f.name for f in dataclasses.fields(DistilConfig)
                   if f.name not in INFERENCE_FIELDS)

QUICK = DistilConfig(teacher="otsu_blue", size=32, width=4, depth=2, steps=4, batch_size=2,
                     tta="none", log_every=0)
