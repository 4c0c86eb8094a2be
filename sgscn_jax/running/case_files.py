"""Writing one case of a 2D image run, and bringing a finished case up to date on resume.

    out/labels/<id>.png            the case's label map at the image's resolution
    out/overlays/<id>.png          image, selection rule (yellow), truth (cyan), object (magenta)
    out/objects/<id>.png           the mask-free object (objects on)
    out/seed_labels/<id>_seed<e>.png       E seeds: each seed's own map
    out/member_labels/<id>_<slug>.png      a vote of methods: each member's map
    out/object_share/<id>.png      E seeds or a vote: the share of members whose object holds
                                   each pixel (255 = all)
    out/uncertainty/<id>.png       E seeds: the per-pixel agreement of their maps
    out/probability/<id>.png       a result with a `probability` map (distil): 0-255
    out/history/<id>.csv, out/levels/<id>.npz   the loss history; a method's levels (CUTS)
    out/cases/<id>.json            the row, written LAST: the case is done exactly when it exists

`write_case` is one case's walk: its label map and the members' maps at the image's
resolution, scored once (`scoring.score_case`), then every file above. `complete_protocols`
scores a finished case again from its saved maps when a resume asks for a protocol or
object settings it lacks. A vote of methods is told apart by its `member_slugs` (the
members' names, `VoteConfig.slugs`): None for every other method. A method whose labels are
its object (`Method.labels_are_object`, distil) is told by `labels_are_object`: its object is
`labels == 1`, cleaned (`scoring.labels_object`), not the object step's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import imageio.v3 as iio
import numpy as np

from sgscn_jax.core.loop import STOP_REASONS
from sgscn_jax.data import files, resize
from sgscn_jax.data.datasets import Case, Record
from sgscn_jax.errors import UserError
from sgscn_jax.evaluation import objects
from sgscn_jax.reporting import overlays
from sgscn_jax.running import levels, results, scoring
from sgscn_jax.running.options import RunOptions


class MissingMembersError(UserError, ValueError):
  """A vote's case whose members' label maps are gone: it cannot be voted again."""


def seed_labels_path(out: Path, case_id: str, e: int) -> Path:
  return Path(out) / "seed_labels" / f"{case_id}_seed{e}.png"


def member_labels_path(out: Path, case_id: str, slug: str) -> Path:
  return Path(out) / "member_labels" / f"{case_id}_{slug}.png"


def member_paths(out: Path, case_id: str, count: int,
                 member_slugs: Optional[Sequence[str]]) -> List[Path]:
  """Where the `count` members of a case keep their label maps: a vote's under
  `member_labels/` by member slug, E seeds' under `seed_labels/` by index."""
  if member_slugs is not None:
    return [member_labels_path(out, case_id, slug) for slug in member_slugs]
  return [seed_labels_path(out, case_id, e) for e in range(count)]


def _read_labels(path: Path) -> np.ndarray:
  return np.asarray(iio.imread(path)).astype(np.int64)


def saved_vote_members(out: Path, case_id: str,
                       member_slugs: Sequence[str]) -> List[np.ndarray]:
  """The members' label maps a vote of methods saved for a case, in member order."""
  paths = [member_labels_path(out, case_id, slug) for slug in member_slugs]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    raise MissingMembersError(f"{case_id}: the vote's member label maps are missing "
                              f"({', '.join(missing)}); rerun with --overwrite")
  return [_read_labels(p) for p in paths]


def saved_seed_members(out: Path, case_id: str) -> Optional[List[np.ndarray]]:
  """The seeds' own label maps of a consensus case, if they were saved."""
  members = []
  while seed_labels_path(out, case_id, len(members)).exists():
    members.append(_read_labels(seed_labels_path(out, case_id, len(members))))
  return members or None


def write_history(path: Path, history) -> None:
  """history/<case>.csv: iteration, total, each term, n_labels (and, under the "stable"
  stopping rules, `changed`: the share of pixels whose pre-update argmax changed)."""
  names = sorted(history.terms)
  changed = None if getattr(history, "changed", None) is None else np.asarray(history.changed)
  lines = ["iteration,total," + ",".join(names) + ",n_labels"
           + ("" if changed is None else ",changed")]
  n = np.asarray(history.n_labels)
  total = np.asarray(history.total)
  terms = {k: np.asarray(v) for k, v in history.terms.items()}
  for i in range(len(total)):
    if n[i] < 0 and math.isnan(total[i]):
      break
    lines.append(",".join([str(i), repr(float(total[i]))]
                          + [repr(float(terms[k][i])) for k in names] + [str(int(n[i]))]
                          + ([] if changed is None else [repr(float(changed[i]))])))
  files.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _score_and_draw(out: Path, labels: np.ndarray, record: Record, case: Case,
                    options: RunOptions, members: Optional[Sequence[np.ndarray]],
                    member_slugs: Optional[Sequence[str]],
                    labels_are_object: bool = False) -> scoring.CaseScore:
  """`scoring.score_case`, then the maps it found: objects/, object_share/, overlays/."""
  scored = scoring.score_case(labels, record, case, objects_config=options.objects,
                              overlay_rule=options.overlay_rule, members=members,
                              voting=member_slugs is not None, gt_clipped=options.gt_clipped,
                              labels_are_object=labels_are_object)
  if scored.vote is not None:
    files.write_png(out / "object_share" / f"{record.case_id}.png",
                    np.round(255 * scored.vote.share).astype(np.uint8))
  if scored.found is not None:
    files.write_png(out / "objects" / f"{record.case_id}.png",
                    scored.found.mask.astype(np.uint8) * 255)
  files.write_png(out / "overlays" / f"{record.case_id}.png",
                  overlays.overlay(record.image, scored.prediction, record.mask,
                                   obj=None if scored.found is None else scored.found.mask))
  return scored


def write_case(case: Case, record: Record, work_shape: Sequence[int], seg_i, seconds: float,
               options: RunOptions,
               member_slugs: Optional[Sequence[str]] = None,
               labels_are_object: bool = False) -> Dict[str, Any]:
  """Writes one case's outputs (module docstring) from its result `seg_i` (a method's
  `Segmentation`-like result for this image, or `seeds.Fused`); its JSON last. Returns
  the row. `seconds`: the case's share of its batch's time plus its loading."""
  out = Path(options.out_dir)
  shape = record.image.shape[:2]
  labels = resize.labels_to_shape(np.asarray(seg_i.labels), shape)
  members = None
  if getattr(seg_i, "members", None) is not None:   # E seeds or a vote's members: their maps
    members = [resize.labels_to_shape(np.asarray(m), shape) for m in seg_i.members]
    for path, m in zip(member_paths(out, record.case_id, len(members), member_slugs), members):
      files.write_label_map(path, m)
  scored = _score_and_draw(out, labels, record, case, options, members, member_slugs,
                           labels_are_object)
  files.write_label_map(out / "labels" / f"{record.case_id}.png", scored.labels)
  if getattr(seg_i, "probability", None) is not None:   # distil: the student's map
    p = resize.resize_image(np.asarray(seg_i.probability, np.float32)[..., None], shape)
    files.write_png(out / "probability" / f"{record.case_id}.png",
                    np.round(255 * np.clip(p[..., 0], 0, 1)).astype(np.uint8))
  if seg_i.history is not None:
    write_history(out / "history" / f"{record.case_id}.csv", seg_i.history)
  row: Dict[str, Any] = {
      "case_id": record.case_id, "method": options.method_name,
      "height": record.image.shape[0], "width": record.image.shape[1],
      "work_height": work_shape[0], "work_width": work_shape[1],
      "iterations": int(seg_i.iterations), "n_labels": int(seg_i.n_labels),
      "finite": bool(seg_i.finite), "seconds": round(seconds, 3),
  }
  hierarchy = levels.case_levels(seg_i, shape)
  if hierarchy is not None:   # a method with levels (CUTS): kept, and the level oracles
    levels.write_levels(out, record.case_id, hierarchy)
    row.update(levels.oracle_fields(hierarchy, record, options.objects))
  if member_slugs is not None:   # the voted object's map; the members'
    row.update(n_labels=len(np.unique(scored.labels)), members=" ".join(member_slugs),
               member_n_labels=" ".join(str(int(n)) for n in seg_i.member_n_labels),
               member_iterations=" ".join(str(int(n)) for n in seg_i.member_iterations))
  if getattr(seg_i, "stop_reason", None) is not None:
    row["stop_reason"] = STOP_REASONS[int(seg_i.stop_reason)]
  if getattr(seg_i, "agreement", None) is not None:  # E seeds fused: where they disagree
    agreement = resize.labels_to_shape(np.round(255 * seg_i.agreement).astype(np.int32),
                                       shape).astype(np.uint8)
    files.write_png(out / "uncertainty" / f"{record.case_id}.png", agreement)
    row.update(seeds=options.seeds_per_image,
               agreement_mean=round(float(seg_i.agreement.mean()), 5))
  norm = record.extra.get("normalisation") or {}
  row["intensity"] = "; ".join(str(norm[k]) for k in ("channels", "rule") if norm.get(k))
  for key in ("diagnosis", "diagnosis_name", "hair_fraction", "frame_fraction",
              "marks_fraction"):
    if record.extra.get(key) is not None:
      row[key] = record.extra[key]
  row.update(scored.fields)
  results.write_case(out, row)
  return row


def needs_update(row: Dict[str, Any], options: RunOptions,
                 labels_are_object: bool = False) -> bool:
  """Whether a finished case's row lacks a protocol the run asks for (paper+fill; with
  `gt_clipped`, the INFLATED one; with objects on, an object found by this
  `objects.VERSION` with these object settings, taken from the labels exactly when
  `labels_are_object`)."""
  if "largest_overlap.dice" in row and "paper_fill.dice" not in row:
    return True
  if options.gt_clipped is not None and "largest_overlap.dice" in row and (
      "gt_clipped.dice" not in row):
    return True
  return options.objects is not None and (
      row.get("object_version") != objects.VERSION
      or row.get("object_config") != scoring.object_tag(options.objects, labels_are_object))


def complete_protocols(cases: Sequence[Case], load: Callable[[Case], Record],
                       options: RunOptions,
                       member_slugs: Optional[Sequence[str]] = None,
                       labels_are_object: bool = False) -> int:
  """Brings each finished case that `needs_update` up to date from its saved label map
  (and its seeds' or members' maps): object, overlay and scores again; returns how many
  were updated. A run made before these protocols existed is upgraded in place when it is
  resumed. A vote of methods (`member_slugs` given) votes again from its members' saved
  maps and rewrites the case's label map, the voted object's."""
  out, upgraded = Path(options.out_dir), 0
  for case in cases:
    row = results.read_case(out, case.case_id)
    path = out / "labels" / f"{case.case_id}.png"
    if row is None or not path.exists() or not needs_update(row, options, labels_are_object):
      continue
    record = load(case)
    members = (saved_vote_members(out, case.case_id, member_slugs) if member_slugs is not None
               else saved_seed_members(out, case.case_id))
    scored = _score_and_draw(out, _read_labels(path), record, case, options, members,
                             member_slugs, labels_are_object)
    if member_slugs is not None:
      files.write_label_map(path, scored.labels)
      row["n_labels"] = len(np.unique(scored.labels))
    row.update(scored.fields)
    results.write_case(out, row)
    upgraded += 1
  return upgraded
