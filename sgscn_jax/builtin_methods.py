"""The built-in methods, collected and registered in `sgscn_jax.registry` in one place.

SGSCN and S3-Net (SGSCN's loop with S3-Net's network and losses, `S3NET_CONFIG`) are
defined here; the baselines define their own `registry.Method` in their modules
(`kmeans.METHOD`, ..., `classical.METHODS`) without registering it. Importing this module
registers them all, in the order of `method_names()`: sgscn, s3net, kmeans, deepcluster,
iic, otsu, otsu_blue, chan_vese, cuts (a data-set method, fitted on the run's images first:
`cuts.method`), jule (`jule.method`), and last `vote` (a vote of the
others' objects, `baselines.method_vote`: `vote:kmeans:5,otsu_blue,chan_vese`). The
package's `__init__` imports it, so every user of the registry sees the built-ins; the
registry itself imports no method (no import circle).

A method that ships with the project is added to `BUILTIN` below (docs/ADDING_A_METHOD.md).
"""

from __future__ import annotations

import dataclasses

from sgscn_jax.baselines import atropos, classical, deepcluster, iic, kmeans, method_vote
from sgscn_jax.core import batching
from sgscn_jax.cuts import method as cuts_method
from sgscn_jax.distil import method as distil_method
from sgscn_jax.core.config import Config
from sgscn_jax.core.loop import segment_image
from sgscn_jax.jule import method as jule
from sgscn_jax.registry import Method, register_method
from sgscn_jax.volume import memory


def network_image_bytes(shape, c_in: int, config: Config) -> int:
  """`Method.image_memory` of SGSCN and S3-Net: the calibrated peak memory of one 2D image
  of working shape `(h, w)` (`volume.memory.estimate_bytes`, slice mode)."""
  return memory.estimate_bytes((1, *shape), c_in, config.n_channels, mode="slices",
                               n_conv=config.n_conv)

SGSCN = Method(
    name="sgscn", title="SGSCN", core=segment_image, default_config=Config(),
    quick_config=Config(n_channels=8, iterations=2), spacing=True,
    image_memory=network_image_bytes,
    description="a CNN trained on the image alone (Ahn et al., MICCAI 2021)")

# S3-Net's published settings (Karimijafarbigloo et al., ICCV 2023 workshop; REFERENCE.md
# section 3; docs/S3NET.md): 256x256 working size (`working_size`), 3.5 L_ce + 0.2 L_AT +
# 4 L_S, SGD lr 0.2 (the poster says 0.36), 50 iterations. Our choices where the paper is
# silent: 100 channels, one I-LKA block, momentum 0.9 and the min_labels = 3 early stop of
# the Kim et al. / SGSCN code it builds on, L_AT as the symmetric-KL variant.
S3NET_WEIGHTS = (("cross_entropy", 3.5), ("transform_consistency_kl", 0.2),
                 ("edge_aware_spatial", 4.0))
S3NET_CONFIG = Config(architecture="s3net", n_channels=100, n_conv=1, learning_rate=0.2,
                      momentum=0.9, iterations=50, loss_weights=S3NET_WEIGHTS)

S3NET = Method(
    name="s3net", title="S3-Net", core=segment_image, default_config=S3NET_CONFIG,
    quick_config=dataclasses.replace(S3NET_CONFIG, n_channels=8, iterations=2), spacing=True,
    working_size=(256, 256), image_memory=network_image_bytes,
    description="S3-Net's network and losses, with L_S and L_AT made to work "
                "(Karimijafarbigloo et al., ICCV 2023 workshop)")

# (method, the entry points its module already built, or None), in registration order; the
# shared entry points let the library's own `segment_one` and the registry share programs.
BUILTIN = (
    (SGSCN, batching.SGSCN),
    (S3NET, batching.SGSCN),
    (kmeans.METHOD, kmeans.ENTRY),
    (deepcluster.METHOD, deepcluster.ENTRY),
    (iic.METHOD, iic.ENTRY),
    *((method, None) for method in classical.METHODS),
    (cuts_method.METHOD, None),   # a data-set method: fit, then segment (registry.Method.fit)
    (jule.METHOD, None),          # its own entry points (make_entry_points): a host loop
    (atropos.METHOD, None),       # ANTs Atropos through antspyx (a host method, optional extra)
    (distil_method.METHOD, None),  # a data-set method: a student trained on a teacher's objects
    (method_vote.METHOD, None),   # its own entry points: each member's (make_entry_points)
)

def _register_builtins() -> None:
  for method, entry in BUILTIN:
    register_method(method, entry=entry)


_register_builtins()
