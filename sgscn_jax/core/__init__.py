"""The engine: configuration, the networks and their shared layers (`layers`), loss terms,
the per-image loop, batching (`host` for methods run on the host), sharding.

Imports point one way: nothing here imports another subpackage of `sgscn_jax`.

The public names below are re-exported from the modules that define them:

    from sgscn_jax.core import Config, segment_one, segment_batch, image_keys
"""

from sgscn_jax.core.batching import EntryPoints, compile_segment_one, segment_batch, segment_one
from sgscn_jax.core.config import Config, config_from_text, parse_schedule
from sgscn_jax.core.host import HostEntryPoints
from sgscn_jax.core.loop import (STOP_REASONS, History, Segmentation, check_image, image_keys,
                                 python_loop, renumber, segment_image)
from sgscn_jax.core.losses import (LOSS_TERMS, LossContext, context_consistency_loss,
                                   coordinate_grid, cross_entropy_loss, register_loss_term,
                                   sparse_spatial_loss)
from sgscn_jax.core.sharding import batch_mesh, segment_sharded

__all__ = [
    "Config", "EntryPoints", "History", "HostEntryPoints", "LOSS_TERMS", "LossContext",
    "STOP_REASONS", "Segmentation", "batch_mesh", "check_image", "compile_segment_one",
    "config_from_text", "context_consistency_loss", "coordinate_grid", "cross_entropy_loss",
    "image_keys", "parse_schedule", "python_loop", "register_loss_term", "renumber",
    "segment_batch", "segment_image", "segment_one", "segment_sharded", "sparse_spatial_loss",
]
