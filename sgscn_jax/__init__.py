"""sgscn-jax: unsupervised per-image segmentation (SGSCN, Ahn et al., MICCAI 2021) in JAX.

The public face: what a researcher uses without reaching into subpackages.

    from sgscn_jax import Config, segment_one, segment_batch, image_keys
    result = segment_one(jax.random.key(0), image, Config())      # image [H, W, C] in [0, 1]

Subpackages and modules (imports point down this list, never up; tests/test_imports.py
checks that no import, at the top or inside a function, closes a circle): `core` (config,
layers, networks, loss terms, the per-image loop, batching, sharding), `volume` (3D and
slice mode, memory plan), `data` (reading, writing, resizing, data sets), `evaluation`
(metrics, selection, objects), `registry` (the registry of methods, which imports no
method), `baselines` (other methods, each a `registry.Method`), `builtin_methods` (SGSCN,
S3-Net and the baselines, registered once), `running` (data-set runs, distributed runs,
comparisons), `reporting` (overlays, charts, tables). This module imports `builtin_methods`,
so the built-in methods are registered before any module of the package is used.
"""

__version__ = "0.2.0"

from sgscn_jax import builtin_methods  # registers the built-in methods
from sgscn_jax.core.batching import compile_segment_one, segment_batch, segment_one
from sgscn_jax.core.config import Config
from sgscn_jax.core.losses import (LOSS_TERMS, context_consistency_loss, coordinate_grid,
                                   cross_entropy_loss, register_loss_term, sparse_spatial_loss)
from sgscn_jax.core.loop import History, Segmentation, image_keys, python_loop, segment_image
from sgscn_jax.core.network import apply as network_apply
from sgscn_jax.core.network import init as network_init
from sgscn_jax.core.network import parameter_count
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.registry import (METHODS, FitContext, Method, MethodSpec, get_method, method_names,
                                parse_method, parse_methods, register_method)
from sgscn_jax.volume import segment_volume

__all__ = [
    "Config", "FitContext", "History", "LOSS_TERMS", "METHODS", "Method", "MethodSpec",
    "Segmentation", "builtin_methods",
    "compile_segment_one", "context_consistency_loss", "coordinate_grid", "cross_entropy_loss",
    "get_method", "image_keys", "method_names", "metrics", "network_apply", "network_init",
    "parameter_count", "parse_method", "parse_methods", "python_loop", "register_loss_term",
    "register_method",
    "segment_batch", "segment_image", "segment_one", "segment_volume", "selection",
    "sparse_spatial_loss",
]
