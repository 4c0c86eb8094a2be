"""CUTS (Liu et al., MICCAI 2024): a data-set method. A convolutional encoder is fitted on a
set of images (contrastive and patch-reconstruction losses over pixel-centred patches), then
each image's pixel embeddings are condensed by diffusion into a coarse-to-fine stack of label
maps (docs/CUTS.md).

Modules, each one idea, imports pointing down this list: `config` (CutsConfig), `encoder`
(the network: the package's only Flax import), `losses` (NT-Xent, patch reconstruction,
patch SSIM), `sampling` (anchors, positives, crops), `fit` (the jitted training loop),
`condensation` (diffusion condensation, levels, nearest-point assignment), `method` (the
registry's `Method`: fit, then segment each image with the fitted state).

A user reaches CUTS through the registry (`get_method("cuts")`: its `fit`, then
`segment_one` / `segment_batch` with the fitted `state`); the names below are re-exported
from the modules that define them (the fit itself is `cuts.fit.fit`, as the module `fit`
keeps its name here).
"""

from sgscn_jax.cuts.condensation import Condensation, Levels, condense, levels, persistent_level
from sgscn_jax.cuts.config import LEVEL_RULES, QUICK, CutsConfig
from sgscn_jax.cuts.losses import cuts_loss, nt_xent_loss, patch_reconstruction_loss, patch_ssim
from sgscn_jax.cuts.method import CutsEntryPoints, CutsSegmentation, StateMissing

__all__ = [
    "Condensation", "CutsConfig", "CutsEntryPoints", "CutsSegmentation", "LEVEL_RULES", "Levels",
    "QUICK", "StateMissing", "condense", "cuts_loss", "levels", "nt_xent_loss",
    "patch_reconstruction_loss", "patch_ssim", "persistent_level",
]
