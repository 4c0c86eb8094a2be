"""Seed consensus: several label maps of one image fused into one, with a per-pixel agreement.

A label map's ids are arbitrary, so maps from different seeds are first put in one frame:
the reference is the map whose number of labels is the median (the first such); every
other map's labels are matched one-to-one to the reference's by the largest total overlap
(`scipy.optimize.linear_sum_assignment` on the overlap counts), and a label left unmatched
takes a fresh id. Then each pixel takes the id most of the maps give it (ties: the reference
map's own), and its agreement is the share of the maps that give it that id:

    agreement(p) = |{e : aligned_e(p) = consensus(p)}| / E      in [1/E, 1]

Identical maps give themselves with agreement 1; permuting any map's ids changes nothing.
Where the seeds disagree, the agreement map shows it (`uncertainty/<case>.png`).

Objects are fused too (`vote_objects`): each seed's label map gives its own mask-free object,
and a pixel is in the consensus object when most seeds' objects hold it,

    share(p) = |{e : object_e(p)}| / E,     object(p) = share(p) > 1/2

(at share = 1/2, an even E's tie, a given tie-break mask decides). A binary answer varies
less across seeds than a ~10-cluster partition, and voting on it needs no matching.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment


class ObjectVote(NamedTuple):
  mask: np.ndarray   # [*spatial] bool: the consensus object
  share: np.ndarray  # [*spatial] float32 in [0, 1]: share of the seeds' objects holding p

  @property
  def agreement(self) -> np.ndarray:
    """[*spatial] share of the seeds that agree with the consensus answer at p, in [1/2, 1]."""
    return np.maximum(self.share, 1 - self.share)


def vote_objects(masks: np.ndarray, tie: np.ndarray | None = None) -> ObjectVote:
  """The per-pixel majority of `masks` `[E, *spatial]` (each seed's object). Where exactly
  half the seeds hold a pixel (E even), `tie` `[*spatial]` decides (None: outside)."""
  masks = np.asarray(masks, bool)
  if masks.ndim < 2 or len(masks) < 1:
    raise ValueError(f"expected [E, *spatial] object masks, got shape {masks.shape}")
  votes = masks.sum(0)
  share = (votes / len(masks)).astype(np.float32)
  mask = 2 * votes > len(masks)
  if tie is not None:
    tie = np.asarray(tie, bool)
    if tie.shape != mask.shape:
      raise ValueError(f"tie-break mask {tie.shape} does not match the objects {mask.shape}")
    mask |= (2 * votes == len(masks)) & tie
  return ObjectVote(mask, share)


class Consensus(NamedTuple):
  labels: np.ndarray     # [*spatial] int32, renumbered 0..K-1
  agreement: np.ndarray  # [*spatial] float32 in [1/E, 1]


def align(labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """`labels` `[*spatial]` relabelled into `reference`'s ids by the one-to-one matching of
  largest total overlap; unmatched labels get ids above the reference's."""
  a = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
  r = np.unique(reference, return_inverse=True)
  ref_ids, ref = r[0], r[1].reshape(reference.shape)
  overlap = np.zeros((a.max() + 1, ref.max() + 1), np.int64)
  np.add.at(overlap, (a.ravel(), ref.ravel()), 1)
  rows, cols = linear_sum_assignment(-overlap)
  mapping = np.full(a.max() + 1, -1, np.int64)
  mapping[rows] = ref_ids[cols]
  fresh = np.flatnonzero(mapping < 0)
  first = np.full(a.max() + 1, a.size)
  np.minimum.at(first, a.ravel(), np.arange(a.size))
  fresh = fresh[np.argsort(first[fresh], kind="stable")]   # by first appearance, not by value
  mapping[fresh] = int(ref_ids.max()) + 1 + np.arange(len(fresh))
  return mapping[a]


def _by_first_appearance(stack: np.ndarray) -> np.ndarray:
  """The same partition with ids 0..K-1 in order of first appearance (raster order over
  the stacked maps): ids that no longer depend on any map's label values."""
  values, first, inverse = np.unique(stack.ravel(), return_index=True, return_inverse=True)
  rank = np.empty(len(values), np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(values))
  return rank[inverse.ravel()].reshape(stack.shape)


def consensus(maps: np.ndarray) -> Consensus:
  """The consensus of `maps` `[E, *spatial]` (integer label maps of one image)."""
  maps = np.asarray(maps)
  if maps.ndim < 2 or len(maps) < 1:
    raise ValueError(f"expected [E, *spatial] label maps, got shape {maps.shape}")
  counts = [len(np.unique(m)) for m in maps]
  reference = maps[int(np.argsort(counts, kind="stable")[(len(maps) - 1) // 2])]
  aligned = _by_first_appearance(np.stack([reference] + [align(m, reference) for m in maps]))
  reference, aligned = aligned[0], aligned[1:]
  ids = np.unique(aligned)
  votes = np.stack([(aligned == i).sum(0) for i in ids])          # [K, *spatial]
  best = votes.max(0)
  # Ties go to the reference map's own label (not to an id's value): permutation-invariant.
  own = np.searchsorted(ids, reference)
  own_votes = np.take_along_axis(votes, own[None], 0)[0]
  winner = np.where(own_votes == best, own, votes.argmax(0))
  agreement = (best / len(maps)).astype(np.float32)
  labels = np.unique(ids[winner], return_inverse=True)[1].reshape(winner.shape)
  return Consensus(labels.astype(np.int32), agreement)
