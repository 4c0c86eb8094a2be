"""Scoring one case: what a label map is worth, computed once, written by the caller.

    label map [*spatial] at the image's resolution (and, for E seeds or a vote of methods,
    the members' maps)
      --(the object step: `find_object`, or `voted_object` over the members; a method
         whose labels are its object, distil: `labels_object`)--> object
      --(a vote of methods: the voted object's 2-label map becomes the case's map)-->
      --(the overlay's selection rule)--> prediction
      --(collapse check, empty-mask check, every protocol's scores)--> row fields

`score_case` is that whole walk in one call and returns a `CaseScore`; the image runner
(`running.case_files`) writes its maps and row, the volume runner uses the pieces. Nothing
here writes a file.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, NamedTuple, Optional, Sequence

import numpy as np
from scipy import ndimage

from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.evaluation import consensus, objects, protocols, selection


def score_labels(labels: np.ndarray, record: Record,
                 object_mask: Optional[np.ndarray] = None,
                 gt_clipped: Optional[int] = None) -> Dict[str, float]:
  """Metrics of every protocol that applies (`protocols.score`), `{"<protocol>.<metric>"}`.

  Uses the record's `valid` region (e.g. DRIVE's field of view) and, for volumes, its voxel
  `spacing` (HD95 in the spacing's unit), when present in `record.extra`. `gt_clipped`
  (a dilation radius; None: off, the default) adds the INFLATED diagnostic protocol.
  """
  return protocols.score(labels, record.mask, record.extra.get("valid"),
                         record.extra.get("spacing"), object_mask, gt_clipped)


class FoundObject(NamedTuple):
  mask: np.ndarray     # [*spatial] bool at the label map's shape
  reason: str          # what the object step chose, in words
  seconds: float
  config_tag: str = ""  # `objects.config_tag` of the settings that found it


def find_object(labels: np.ndarray, record: Record, config: objects.ObjectConfig) -> FoundObject:
  """The mask-free object of a label map (`objects.extract_object`), timed."""
  start = time.perf_counter()
  found = objects.extract_object(labels, record.image, config, valid=record.extra.get("valid"))
  return FoundObject(np.asarray(found.mask, bool), found.reason, time.perf_counter() - start,
                     objects.config_tag(config))


LABELS_TAG = "labels_are_object"   # the object_config of an object taken from the labels


def object_tag(config: objects.ObjectConfig, labels_are_object: bool = False) -> str:
  """The row's `object_config`: `objects.config_tag(config)`, marked for an object taken
  from a method's labels (`labels_object`), so that a resume tells the two apart."""
  tag = objects.config_tag(config)
  return f"{LABELS_TAG};{tag}" if labels_are_object else tag


def labels_object(labels: np.ndarray, record: Record, config: objects.ObjectConfig) -> FoundObject:
  """The object of a method whose labels are its object (`Method.labels_are_object`,
  distil): `labels == 1`, outside the record's `valid` region never, cleaned as the object
  step cleans the profile: lesion and mass its largest piece (8-connected), lungs the
  `lung_count` largest, holes filled; vessels as it is."""
  start = time.perf_counter()
  mask = np.asarray(labels) == 1
  valid = record.extra.get("valid")
  if valid is not None:
    mask &= np.asarray(valid, bool)
  keep = {"lesion": 1, "mass": 1, "lungs": config.lung_count}.get(config.profile, 0)
  if keep and mask.any():
    pieces, n = ndimage.label(mask, np.ones((3,) * mask.ndim, bool))
    if n > keep:
      sizes = np.bincount(pieces.ravel())[1:]
      mask = np.isin(pieces, np.argsort(-sizes, kind="stable")[:keep] + 1)
  if keep:
    mask = ndimage.binary_fill_holes(mask)
  how = ("as it is" if not keep else
         f"its largest {keep} piece(s), holes filled" if keep > 1 else
         "its largest piece, holes filled")
  reason = (f"the method's labels are its object: labels == 1, {how}; object "
            f"{mask.mean():.3f} of the image")
  return FoundObject(mask, reason, time.perf_counter() - start, object_tag(config, True))


def voted_object(labels: np.ndarray, members: Sequence[np.ndarray], record: Record,
                 config: objects.ObjectConfig, *, first_breaks_ties: bool = False) -> tuple:
  """(FoundObject, ObjectVote): the vote of the members' objects (`consensus.vote_objects`),
  ties to the object of the consensus map `labels` (E seeds) or, with `first_breaks_ties`
  (a vote of methods, whose `labels` are not used), to the first member's object."""
  each = [find_object(m, record, config) for m in members]
  if first_breaks_ties:
    tie, what = each[0], f"methods' objects (ties: the first member's object, {each[0].reason})"
    seconds = sum(f.seconds for f in each)
  else:
    tie = find_object(labels, record, config)
    what = f"seeds' objects (ties: the consensus map's object, {tie.reason})"
    seconds = tie.seconds + sum(f.seconds for f in each)
  vote = consensus.vote_objects(np.stack([f.mask for f in each]), tie=tie.mask)
  reason = f"vote of {len(each)} {what}"
  return FoundObject(vote.mask, reason, seconds, tie.config_tag), vote


def object_fields(found: Optional[FoundObject]) -> Dict[str, Any]:
  """The row's record of the object step (nothing without an object)."""
  if found is None:
    return {}
  return {"object_version": objects.VERSION, "object_config": found.config_tag,
          "object_reason": found.reason, "object_seconds": round(found.seconds, 4),
          "object_fraction": round(float(found.mask.mean()), 5)}


def add_scores(row: Dict[str, Any], labels: np.ndarray, record: Record,
               found: Optional[FoundObject], gt_clipped: Optional[int] = None) -> None:
  """The object's fields (when there is one) and every protocol's scores, into `row`
  (with `gt_clipped`, also the INFLATED diagnostic protocol)."""
  row.update(object_fields(found))
  row.update(score_labels(labels, record, None if found is None else found.mask, gt_clipped))


def overlay_prediction(labels, record: Record, rule: str) -> np.ndarray:
  """The mask an overlay draws: `rule`'s cluster when the case has a mask (largest overlap),
  else the central cluster."""
  if record.mask is None or rule != "largest_overlap":
    return selection.select(labels, "central")
  return selection.select(labels, rule, record.mask, record.extra.get("valid"))


# A label map whose largest cluster holds at least this share of the pixels (one label
# included) is flagged `collapsed` (docs/S3NET.md, "collapse on lung CT"): no real object of
# our data sets leaves the rest of the image under 5 % (the largest cluster of every Otsu,
# k-means and SGSCN map of PH2 and the ultrasound set holds at most 85 %), while S3-Net's
# collapsed lung slices put 99-100 % in one cluster.
COLLAPSE_SHARE = 0.95


def collapse_fields(labels: np.ndarray, case_id: str = "") -> Dict[str, Any]:
  """`largest_share` (the largest cluster's share of the pixels of `labels`, any rank) and
  `collapsed` (it is >= `COLLAPSE_SHARE`); a collapse is also warned on stderr, one line."""
  counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
  share = float(counts.max() / max(counts.sum(), 1))
  collapsed = share >= COLLAPSE_SHARE
  if collapsed:
    print(f"warning: {case_id}: collapsed label map: one cluster holds {100 * share:.1f} % of "
          f"the pixels ({int((counts > 0).sum())} labels)", file=sys.stderr)
  return {"largest_share": round(share, 5), "collapsed": bool(collapsed)}


def check_mask(record: Record, case: Case, row: Dict[str, Any]) -> None:
  """Marks (and warns about) a case whose mask has no foreground pixel."""
  if record.mask is not None and not np.any(record.mask):
    row["empty_mask"] = True
    print(f"\nwarning: {case.case_id}: the mask {case.mask_path} is empty (no foreground "
          "pixel); its scores are kept in its row and left out of the means", file=sys.stderr)


class CaseScore(NamedTuple):
  """One case scored (`score_case`)."""
  labels: np.ndarray                   # [*spatial] the case's map as scored (a vote's: 0/1)
  found: Optional[FoundObject]         # the mask-free object, or None (objects off)
  vote: Optional[consensus.ObjectVote]  # the members' objects voted, or None
  prediction: np.ndarray               # [*spatial] bool: what the overlay draws
  fields: Dict[str, Any]               # the row's collapse, vote, mask, object and scores


def score_case(labels: np.ndarray, record: Record, case: Case, *,
               objects_config: Optional[objects.ObjectConfig], overlay_rule: str,
               members: Optional[Sequence[np.ndarray]] = None, voting: bool = False,
               gt_clipped: Optional[int] = None,
               labels_are_object: bool = False) -> CaseScore:
  """The whole scoring walk of one case (module docstring).

  Args:
    labels: the case's label map at the image's resolution (E seeds: their consensus).
    members: the seeds' own maps (ties: the consensus map's object) or, with `voting`, a
      vote of methods' members (ties: the first member's object); None or empty: one map.
    voting: a vote of methods: the case's map becomes the voted object's 2-label map (1
      inside), so that every protocol scores the vote itself; needs `objects_config`.
    objects_config: the object step's settings, or None for no object.
    gt_clipped: a dilation radius for the INFLATED diagnostic protocol, or None.
    labels_are_object: the labels are the method's object (`Method.labels_are_object`):
      the object is `labels_object`, not the object step's.
  """
  if voting and objects_config is None:
    raise ValueError(f"{record.case_id}: a vote of methods votes their objects; it needs the "
                     "object step")
  found = vote = None
  if objects_config is not None:
    if labels_are_object and not members:
      found = labels_object(labels, record, objects_config)
    elif members:
      found, vote = voted_object(labels, members, record, objects_config,
                                 first_breaks_ties=voting)
    else:
      found = find_object(labels, record, objects_config)
  if voting:
    labels = found.mask.astype(np.int32)
  fields = collapse_fields(labels, record.case_id)
  if vote is not None:   # how much the members' objects agree
    fields["object_agreement_mean"] = round(float(vote.agreement.mean()), 5)
  check_mask(record, case, fields)
  add_scores(fields, labels, record, found, gt_clipped)
  return CaseScore(labels, found, vote, overlay_prediction(labels, record, overlay_rule), fields)
