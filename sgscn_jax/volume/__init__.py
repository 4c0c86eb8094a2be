"""Volumes: 3D SGSCN and slice mode with consistent labels (`segment`), and the memory plan
and guard (`memory`)."""

from sgscn_jax.volume.segment import (MODES, consistent_slice_labels, distinct_slice_labels,
                                      match_by_overlap, segment_slices, segment_volume,
                                      standardise)

__all__ = ["MODES", "consistent_slice_labels", "distinct_slice_labels", "match_by_overlap",
           "segment_slices", "segment_volume", "standardise"]
