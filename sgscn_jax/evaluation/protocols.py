"""Evaluation protocols: how a label map becomes the binary prediction that is scored.

Every summary and table reports these side by side, each under its own name (row keys
`<key>.<metric>`):

| key | name | prediction | reads the ground truth? |
|---|---|---|---|
| `largest_overlap` | paper | the raw cluster that overlaps B the most | yes (oracle choice) |
| `paper_fill` | paper+fill | that cluster with its holes filled | yes (oracle choice) |
| `object` | object | the mask-free object (`objects.extract_object`) | no |
| `central` | central | the one raw cluster chosen by a centre prior | no |

(`largest_overlap` is SGSCN's protocol; `object` is what a user gets; `central` is
`selection.central_cluster`.)

No protocol above multiplies a prediction by a (dilated) ground truth. One diagnostic
protocol does, and only when asked (`score(..., gt_clipped_radius=r)`, `--gt_clipped r`; never a
default), to measure how far S3-Net's / MS-Former's published protocol moves a figure:

`gt_clipped`, named "paper x dilated GT (INFLATED)": the paper cluster multiplied by the
ground truth dilated by a (2r+1)^2 square; it reads the ground truth to delete false
positives with the answer key. Its scores are inflated by construction and labelled so
wherever they appear.
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

# Level oracles: for a method that returns a hierarchy of label maps (CUTS's levels), the
# level the ground truth likes best (`running.levels`); absent for every other method.
LEVEL_ORACLES = ("oracle_level", "oracle_level_object")
PROTOCOL_NAMES.update(oracle_level="oracle level (paper)",
                      oracle_level_object="oracle level (object)")
PROTOCOL_TEXT.update(
    oracle_level="oracle level (paper): over the method's hierarchy levels, the level whose "
                 "largest-overlap cluster scores the best DSC, that cluster (oracle choice of "
                 "level and cluster; CUTS's 'best one')",
    oracle_level_object="oracle level (object): over the method's hierarchy levels, the level "
                        "whose mask-free object scores the best DSC, that object (oracle choice "
                        "of level only)")

# Diagnostic protocols: computed only on request, reported after the others, never results.
DIAGNOSTIC = ("gt_clipped",)
ALL_PROTOCOLS = PROTOCOLS + LEVEL_ORACLES + DIAGNOSTIC
PROTOCOL_NAMES["gt_clipped"] = "paper x dilated GT (INFLATED)"
PROTOCOL_TEXT["gt_clipped"] = (
    "paper x dilated GT (INFLATED, diagnostic only): the paper cluster multiplied by the "
    "ground truth dilated by a square structuring element (S3-Net's / MS-Former's published "
    "protocol); it deletes false positives with the answer key, so its scores are not results")


def dilated_ground_truth(gt: np.ndarray, radius: int) -> np.ndarray:
  """`gt` dilated by a square (cube in 3D) of side 2 radius + 1: `binary_dilation` with
  `np.ones((2r+1,) * ndim)`. The S3-Net code dilates the ground truth before multiplying;
  its structuring element is not known to us, so `radius` is a parameter (default 1: 3x3)."""
  gt = np.asarray(gt, bool)
  if radius <= 0:
    return gt
  return ndimage.binary_dilation(gt, np.ones((2 * radius + 1,) * gt.ndim, bool))


def gt_clipped(prediction: np.ndarray, gt: np.ndarray, radius: int = 1) -> np.ndarray:
  """INFLATED diagnostic: `prediction AND dilate(gt, radius)` (`dilated_ground_truth`)."""
  return np.asarray(prediction, bool) & dilated_ground_truth(gt, radius)


def fill_holes(mask: np.ndarray) -> np.ndarray:
  """`mask` with every background region not connected to the array's border filled
  (`scipy.ndimage.binary_fill_holes`, 2D or 3D)."""
  return ndimage.binary_fill_holes(np.asarray(mask, bool))


def predictions(labels: np.ndarray, gt: Optional[np.ndarray], valid: Optional[np.ndarray] = None,
                object_mask: Optional[np.ndarray] = None,
                gt_clipped_radius: Optional[int] = None) -> Dict[str, np.ndarray]:
  """The binary prediction of each protocol that applies: the oracle ones need `gt`,
  "object" needs the object's mask (computed once by the caller); the diagnostic
  "gt_clipped" (INFLATED) only with `gt_clipped_radius` (never by default)."""
  out: Dict[str, np.ndarray] = {}
  if gt is not None:
    paper = selection.select(labels, "largest_overlap", gt, valid)
    out["largest_overlap"] = paper
    out["paper_fill"] = fill_holes(paper)
  if object_mask is not None:
    out["object"] = np.asarray(object_mask, bool)
  out["central"] = selection.select(labels, "central")
  if gt is not None and gt_clipped_radius is not None:
    out["gt_clipped"] = gt_clipped(out["largest_overlap"], gt, gt_clipped_radius)
  return out


def score(labels: np.ndarray, gt: Optional[np.ndarray], valid: Optional[np.ndarray] = None,
          spacing: Optional[Sequence[float]] = None,
          object_mask: Optional[np.ndarray] = None,
          gt_clipped_radius: Optional[int] = None) -> Dict[str, float]:
  """Every metric of every protocol, `{"<protocol>.<metric>": value}`; empty without `gt`.
  With `gt_clipped_radius` also the INFLATED diagnostic `gt_clipped.<metric>`."""
  row: Dict[str, float] = {}
  if gt is None:
    return row
  for key, pred in predictions(labels, gt, valid, object_mask, gt_clipped_radius).items():
    for name, value in metrics.all_metrics(pred, gt, valid, spacing=spacing).items():
      row[f"{key}.{name}"] = value
  return row
