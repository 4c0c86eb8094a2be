"""JULE for images and volumes (Yang, Parikh, Batra, CVPR 2016; in 3D, Moriya et al., SPIE
Medical Imaging 2018): patch features learnt by alternating agglomerative clustering of the
patches' embeddings with CNN updates supervised by the current clusters, then k-means on every
voxel's learnt feature.

Modules, imports pointing down the list: `method` (the loop, the registered `METHOD` and its
memory plan), `agglomerate` (the host-side clustering: k-NN affinities, graph-degree linkage,
merges), `triplet` (the weighted triplet loss), `network` (the patch CNN as pure functions),
`patches` (patch geometry, sampling and extraction). docs/JULE.md states the choices.
"""

from sgscn_jax.jule.agglomerate import Agglomeration
from sgscn_jax.jule.method import JuleConfig, JuleEntryPoints, plan_memory
from sgscn_jax.jule.triplet import weighted_triplet_loss

__all__ = ["Agglomeration", "JuleConfig", "JuleEntryPoints", "plan_memory",
           "weighted_triplet_loss"]
