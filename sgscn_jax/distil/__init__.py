"""Distil: a student network trained on a whole data set with a teacher's mask-free objects
as its only targets, then segmenting each image in one forward pass (docs/DISTIL.md).

Modules, each one idea, imports pointing down this list: `config` (DistilConfig),
`network` (the U-Net: the package's only Flax import), `augment` (flips, turns, scaled
crops, colour jitter, in JAX), `losses` (confidence-weighted BCE and soft Dice), `train`
(the jitted, sharded step and its host loop), `teacher` (the teacher's objects and share
maps through the registry and the object step, kept for resumes), `method` (the registry's
`Method`: fit, then segment).

A user reaches distil through the registry (`get_method("distil")`: its `fit`, then
`segment_one` / `segment_batch` with the fitted `state`); the names below are re-exported
from the modules that define them (`train` and the other modules keep their names here).
"""

from sgscn_jax.distil.config import LOSSES, QUICK, TTA, DistilConfig
from sgscn_jax.distil.losses import (confidence_weight, distil_loss, weighted_cross_entropy,
                                     weighted_soft_dice)
from sgscn_jax.distil.method import (DistilEntryPoints, DistilSegmentation, StateMissing, fit,
                                     segment_batch)
from sgscn_jax.distil.teacher import Target, Teacher, resolve_teacher, teacher_targets

__all__ = [
    "DistilConfig", "DistilEntryPoints", "DistilSegmentation", "LOSSES", "QUICK", "StateMissing",
    "TTA", "Target", "Teacher", "confidence_weight", "distil_loss", "fit", "resolve_teacher",
    "segment_batch", "teacher_targets", "weighted_cross_entropy", "weighted_soft_dice",
]
