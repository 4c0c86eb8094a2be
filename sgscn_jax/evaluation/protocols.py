"""Evaluation protocols: how a label map becomes the binary prediction that is scored.

Every summary and table reports these side by side, each under its own name (row keys
`<key>.<metric>`):

| key | name | prediction | reads the ground truth? |
|---|---|---|---|
| `largest_overlap` | paper | the one raw cluster with the largest overlap with B (SGSCN's protocol) | yes (oracle choice) |
| `paper_fill` | paper+fill | that cluster with its holes filled | yes (oracle choice) |
| `object` | object | the mask-free object (`objects.extract_object`): what a user gets | no |
| `central` | central | the one raw cluster chosen by a centre prior (`selection.central_cluster`) | no |

No protocol multiplies a prediction by a (dilated) ground truth.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from scipy import ndimage

from sgscn_jax.evaluation import metrics, selection

PROTOCOLS = ("largest_overlap", "paper_fill", "object", "central")
PROTOCOL_NAMES = {"largest_overlap": "paper", "paper_fill": "paper+fill", "object": "object",
                  "central": "central"}
PROTOCOL_TEXT = {
    "largest_overlap": "paper: the one cluster with the largest overlap with the ground truth "
                       "(oracle choice; ties: fewer pixels outside it, then lower id)",
    "paper_fill": "paper+fill: that cluster with its holes filled (oracle choice)",
    "object": "object: the mask-free object of the label map (hierarchy level, foreground "
              "rule, opening, hole filling, chosen component; no ground truth)",
    "central": "central: the one cluster with the largest share^2/size under a centre prior "
               "(no ground truth)",
}
MASK_FREE = ("object", "central")


def fill_holes(mask: np.ndarray) -> np.ndarray:
  """`mask` with every background region not connected to the array's border filled
  (`scipy.ndimage.binary_fill_holes`, 2D or 3D)."""
  return ndimage.binary_fill_holes(np.asarray(mask, bool))


def predictions(labels: np.ndarray, gt: Optional[np.ndarray], valid: Optional[np.ndarray] = None,
                object_mask: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
  """The binary prediction of each protocol that applies: the oracle ones need `gt`,
  "object" needs the object's mask (computed once by the caller)."""
  out: Dict[str, np.ndarray] = {}
  if gt is not None:
    paper = selection.select(labels, "largest_overlap", gt, valid)
    out["largest_overlap"] = paper
    out["paper_fill"] = fill_holes(paper)
  if object_mask is not None:
    out["object"] = np.asarray(object_mask, bool)
  out["central"] = selection.select(labels, "central")
  return out


def score(labels: np.ndarray, gt: Optional[np.ndarray], valid: Optional[np.ndarray] = None,
          spacing: Optional[Sequence[float]] = None,
          object_mask: Optional[np.ndarray] = None) -> Dict[str, float]:
  """Every metric of every protocol, `{"<protocol>.<metric>": value}`; empty without `gt`."""
  row: Dict[str, float] = {}
  if gt is None:
    return row
  for key, pred in predictions(labels, gt, valid, object_mask).items():
    for name, value in metrics.all_metrics(pred, gt, valid, spacing=spacing).items():
      row[f"{key}.{name}"] = value
  return row
