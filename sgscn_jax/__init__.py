"""sgscn-jax: unsupervised per-image segmentation (SGSCN, Ahn et al., MICCAI 2021) in JAX."""

from sgscn_jax.config import Config
from sgscn_jax.losses import LOSS_TERMS, register_loss_term
from sgscn_jax.optimize import History, Segmentation, image_keys, segment_batch, segment_one

__version__ = "0.1.0"

__all__ = [
    "Config", "History", "LOSS_TERMS", "Segmentation", "image_keys", "register_loss_term",
    "segment_batch", "segment_one",
]
