"""CUTS (Liu et al., MICCAI 2024): a data-set method. A convolutional encoder is fitted on a
set of images (contrastive and patch-reconstruction losses over pixel-centred patches), then
each image's pixel embeddings are condensed by diffusion into a coarse-to-fine stack of label
maps (docs/CUTS.md).

Modules, each one idea, imports pointing down this list: `config` (CutsConfig), `encoder`
(the network: the package's only Flax import), `losses` (NT-Xent, patch reconstruction,
patch SSIM), `sampling` (anchors, positives, crops), `fit` (the jitted training loop),
`condensation` (diffusion condensation, levels, nearest-point assignment), `method` (the
registry's `Method`: fit, then segment each image with the fitted state).
"""

from sgscn_jax.cuts.config import CutsConfig

__all__ = ["CutsConfig"]
