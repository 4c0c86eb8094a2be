"""Seeds of one case: their keys, and the fusion of E seeds' label maps into one.

With `RunOptions.seeds_per_image` E > 1 each image runs E times in the same batch, seed e
with `seed_key(seed, case_id, e, E)`, and the E label maps are fused by their per-pixel
consensus (`evaluation.consensus`): `fuse` gives the case's `Fused` result, whose `members`
(each seed's own map) the case writer keeps and whose objects the scorer votes
(`running.scoring.voted_object`). With E = 1 a case's result is its batch entry
(`case_result`) and its key the case's own key, so a single-seed run is unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from sgscn_jax.evaluation import consensus
from sgscn_jax.running.runner import case_key


def seed_key(seed: int, case_id: str, index: int, count: int):
  """The key of seed `index` of `count` for one case: the case's own key when `count` is 1
  (so a single-seed run is today's run), else `fold_in(case_key, index)`."""
  key = case_key(seed, case_id)
  return key if count == 1 else jax.random.fold_in(key, index)


class Fused(NamedTuple):
  """One case's result from E seeds: the consensus labels and agreement; the run statistics
  (iterations, history, stop reason) of the first seed; finite only if every seed was."""
  labels: np.ndarray
  n_labels: int
  iterations: int
  finite: bool
  history: Any
  stop_reason: Any
  agreement: np.ndarray
  members: np.ndarray    # [E, *spatial] each seed's own label map


def index(seg, i: int):
  """Entry `i` of a batched result (every field)."""
  return jax.tree.map(lambda a: a[i], seg)


def fuse(seg) -> Fused:
  """The E seeds' results `seg` (fields `[E, ...]`) of one case, fused."""
  fused = consensus.consensus(np.asarray(seg.labels))
  first = index(seg, 0)
  return Fused(fused.labels, int(fused.labels.max()) + 1, int(first.iterations),
               bool(np.all(seg.finite)), first.history, getattr(first, "stop_reason", None),
               fused.agreement, np.asarray(seg.labels))


def case_result(seg, i: int, count: int):
  """Case `i`'s result from a batch run with `count` seeds per case (case-major order)."""
  if count == 1:
    return index(seg, i)
  return fuse(jax.tree.map(lambda a: a[i * count:(i + 1) * count], seg))
