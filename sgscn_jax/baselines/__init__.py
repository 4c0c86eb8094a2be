"""Baselines of SGSCN's Table 1, each with the engine's `segment_one` / `segment_batch` shape.

Every method is written for one image `[*spatial, C_in]` and one PRNG key and returns the
engine's `optimize.Segmentation` (labels renumbered 0..K-1, a per-iteration `History`).
`METHODS[name]` is the batched function `(keys [B], images [B, *spatial, C_in], config)`
that `sgscn_jax.pipeline.run_dataset` calls; `DEFAULT_CONFIGS[name]` is its default config.

  kmeans       k-means++ and Lloyd on pixel colours           `kmeans.KMeansConfig`
  deepcluster  alternate k-means on CNN features / CE training `deepcluster.DeepClusterConfig`
  iic          mutual information between transformed copies  `iic.IICConfig`
"""

from __future__ import annotations

from sgscn_jax.baselines import augment, deepcluster, iic, kmeans
from sgscn_jax.baselines.deepcluster import DeepClusterConfig
from sgscn_jax.baselines.iic import IICConfig, iic_mutual_information
from sgscn_jax.baselines.kmeans import KMeansConfig

METHODS = {
    "kmeans": kmeans.segment_batch,
    "deepcluster": deepcluster.segment_batch,
    "iic": iic.segment_batch,
}

DEFAULT_CONFIGS = {
    "kmeans": KMeansConfig(),
    "deepcluster": DeepClusterConfig(),
    "iic": IICConfig(),
}

__all__ = [
    "DEFAULT_CONFIGS", "DeepClusterConfig", "IICConfig", "KMeansConfig", "METHODS",
    "augment", "deepcluster", "iic", "iic_mutual_information", "kmeans",
]
