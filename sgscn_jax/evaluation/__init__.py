"""Scores (`metrics`), cluster selection rules (`selection`), the scoring protocols
(`protocols`), the mask-free object step (`objects`) and the vote of objects or label maps
(`consensus`): host-side NumPy, never inside a jitted program.

The public names below are re-exported from the modules that define them:

    from sgscn_jax.evaluation import ObjectConfig, extract_object, dice
    mask = extract_object(labels, image, ObjectConfig(polarity="dark")).mask
"""

from sgscn_jax.evaluation.consensus import Consensus, ObjectVote, align, vote_objects
from sgscn_jax.evaluation.hierarchy import cluster_statistics, region_hierarchy
from sgscn_jax.evaluation.metrics import (METRIC_NAMES, all_metrics, dice, hammoude, hausdorff95,
                                          jaccard, precision, recall, xor_error,
                                          xor_over_intersection)
from sgscn_jax.evaluation.objects import (POLARITIES, PROFILES, ObjectConfig, ObjectResult,
                                          config_tag, extract_object)
from sgscn_jax.evaluation.protocols import (ALL_PROTOCOLS, MASK_FREE, PROTOCOL_NAMES, PROTOCOLS,
                                            predictions, score)
from sgscn_jax.evaluation.selection import (SELECTION_RULES, central_cluster,
                                            largest_overlap_cluster, select)

__all__ = [
    "ALL_PROTOCOLS", "Consensus", "MASK_FREE", "METRIC_NAMES", "ObjectConfig", "ObjectResult",
    "ObjectVote", "POLARITIES", "PROFILES", "PROTOCOLS", "PROTOCOL_NAMES", "SELECTION_RULES",
    "align", "all_metrics", "central_cluster", "cluster_statistics", "config_tag", "dice",
    "extract_object", "hammoude", "hausdorff95", "jaccard", "largest_overlap_cluster",
    "precision", "predictions", "recall", "region_hierarchy", "score", "select", "vote_objects",
    "xor_error", "xor_over_intersection",
]
