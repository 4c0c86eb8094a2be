"""Baselines of SGSCN's Table 1, each with the engine's `segment_one` / `segment_batch` shape.

Every method is written for one image `[*spatial, C_in]` and one PRNG key and returns the
engine's `core.loop.Segmentation` (labels renumbered 0..K-1, a per-iteration `History`).
Each module defines its `registry.Method` (`METHOD`; `classical.METHODS`: name, title,
core, default and quick configs) without registering it; `sgscn_jax.builtin_methods`
registers them, and the runners and tables read the registry.

  kmeans       k-means++ and Lloyd on pixel colours           `kmeans.KMeansConfig`
  deepcluster  alternate k-means on CNN features / CE training `deepcluster.DeepClusterConfig`
  iic          mutual information between transformed copies  `iic.IICConfig`
  otsu         Otsu threshold of the most bimodal channel/PC1  `classical.OtsuConfig`  (host)
  chan_vese    Chan-Vese active contour without edges          `classical.ChanVeseConfig` (host)
  vote         per-pixel majority of other methods' objects     `method_vote.VoteConfig`

`common` holds what they share (`make_history`, the feature network's helpers). The
configs, results and helpers a user or another subpackage needs are re-exported here.
"""

from __future__ import annotations

from sgscn_jax.baselines import augment, classical, common, deepcluster, iic, kmeans, method_vote
from sgscn_jax.baselines.classical import ChanVeseConfig, OtsuConfig, chan_vese_labels, otsu_labels
from sgscn_jax.baselines.common import make_history
from sgscn_jax.baselines.deepcluster import DeepClusterConfig
from sgscn_jax.baselines.iic import IICConfig, iic_mutual_information
from sgscn_jax.baselines.kmeans import KMeansConfig, KMeansResult
from sgscn_jax.baselines.method_vote import MethodVote, VoteConfig

__all__ = [
    "ChanVeseConfig", "DeepClusterConfig", "IICConfig", "KMeansConfig", "KMeansResult",
    "MethodVote", "OtsuConfig", "VoteConfig",
    "augment", "chan_vese_labels", "classical", "common", "deepcluster", "iic",
    "iic_mutual_information", "kmeans", "make_history", "method_vote", "otsu_labels",
]
