"""Volumes: 3D SGSCN and slice mode with consistent labels (`segment`), and the memory plan
and guard (`memory`)."""

from sgscn_jax.volume.memory import (MemoryBudgetError, Plan, estimate_bytes, parse_bytes,
                                     plan_volume)
from sgscn_jax.volume.segment import (MODES, consistent_slice_labels, distinct_slice_labels,
                                      match_by_overlap, segment_slices, segment_volume,
                                      standardise)

__all__ = ["MODES", "MemoryBudgetError", "Plan", "consistent_slice_labels",
           "distinct_slice_labels", "estimate_bytes", "match_by_overlap", "parse_bytes",
           "plan_volume", "segment_slices", "segment_volume", "standardise"]
