"""A hierarchy of label maps per case (CUTS's levels): saved, and scored by the level oracles.

A method whose result has `levels` `[V_max, *spatial]` and `n_levels` (the first n are
real, coarse to fine) gets, per case, `levels/<id>.npz` (the levels at the image's
resolution, their cluster counts and persistence, the mask-free level's index) and the row
fields of the two level-oracle protocols (`protocols.LEVEL_ORACLES`):

* `oracle_level.<metric>`: the level whose largest-overlap cluster has the best DSC, and that
  cluster's metrics; `oracle_level_index` its index, `oracle_level_clusters` its clusters;
* `oracle_level_object.<metric>`: the level whose mask-free object (the run's object step)
  has the best DSC (ties: the coarser level), and that object's metrics.

Both read the ground truth to choose a level: they are oracles, named as such.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from sgscn_jax.data import files, resize
from sgscn_jax.data.datasets import Record
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.running import scoring

LEVELS_DIR = "levels"


def case_levels(seg_i, shape) -> Optional[Dict[str, np.ndarray]]:
  """The case's real levels at `shape` (the image's), or None for a method without levels."""
  stack = getattr(seg_i, "levels", None)
  if stack is None:
    return None
  n = int(seg_i.n_levels)
  return {"levels": np.stack([resize.labels_to_shape(np.asarray(stack[v]), shape)
                              for v in range(n)]).astype(np.int32),
          "clusters": np.asarray(seg_i.level_clusters)[:n],
          "persistence": np.asarray(seg_i.level_persistence)[:n],
          "chosen": np.int32(seg_i.level)}


def write_levels(out: Path, case_id: str, found: Dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **found)
  files.atomic_write_bytes(Path(out) / LEVELS_DIR / f"{case_id}.npz", buffer.getvalue())


def oracle_fields(found: Dict[str, np.ndarray], record: Record,
                  object_config: Any = None) -> Dict[str, Any]:
  """The level oracles' row fields (module docstring); empty without a ground truth."""
  gt, valid = record.mask, record.extra.get("valid")
  if gt is None:
    return {}
  row: Dict[str, Any] = {"levels_clusters": " ".join(str(int(c)) for c in found["clusters"]),
                         "level_chosen": int(found["chosen"])}
  best = None
  for v, labels in enumerate(found["levels"]):
    pred = selection.select(labels, "largest_overlap", gt, valid)
    dsc = metrics.dice(pred, gt, valid)
    if best is None or dsc > best[0]:
      best = (dsc, v, pred)
  _put(row, "oracle_level", best, found, record)
  if object_config is not None:
    best = None
    for v, labels in enumerate(found["levels"]):
      mask = scoring.find_object(labels, record, object_config).mask
      dsc = metrics.dice(mask, gt, valid)
      if best is None or dsc > best[0]:
        best = (dsc, v, mask)
    _put(row, "oracle_level_object", best, found, record)
  return row


def _put(row, key, best, found, record) -> None:
  _, v, pred = best
  for name, value in metrics.all_metrics(pred, record.mask, record.extra.get("valid"),
                                         spacing=record.extra.get("spacing")).items():
    row[f"{key}.{name}"] = value
  row[f"{key}_index"] = int(v)
  row[f"{key}_clusters"] = int(found["clusters"][v])


def level_objects(found: Dict[str, np.ndarray], record: Record, object_config: Any) -> list:
  """The mask-free object `[H, W]` bool of every level (the run's object step)."""
  return [scoring.find_object(labels, record, object_config).mask for labels in found["levels"]]


def object_stable_level(objects_: list) -> int:
  """The mask-free level rule "object_stable": the level whose object agrees best with the
  objects of its neighbouring levels,

      stability(v) = mean over u in {v - 1, v + 1} (those that exist) of DSC(O_v, O_u),

  an empty object scoring 0; ties to the coarser level. No ground truth is read."""
  n = len(objects_)
  if n == 1:
    return 0
  best, chosen = -1.0, 0
  for v in range(n):
    if not objects_[v].any():
      continue
    near = [u for u in (v - 1, v + 1) if 0 <= u < n]
    score = float(np.mean([metrics.dice(objects_[v], objects_[u]) for u in near]))
    if score > best:
      best, chosen = score, v
  return chosen
