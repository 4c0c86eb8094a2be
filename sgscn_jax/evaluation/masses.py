"""The object step's "mass" rule: a compact mass that differs from its surroundings, found
among the regions of every level of the cluster hierarchy (ultrasound tumours: compact,
hypoechoic masses; REFERENCE.md section 4).

A tumour in a B-mode image is rarely one cluster: speckle splits it, and the threshold that
separates dark from bright tissue also takes fat lobules, the acoustic shadow beneath the
tumour and dark bands at the image's edges. So instead of one side of one threshold, every
region that the Ward hierarchy (`hierarchy.merge_sequence`) forms at any level is a
candidate: each cluster, and each union of adjacent clusters that a merge makes (2K - 1
distinct regions for K clusters). Of each region darker than the object channel's Otsu
threshold t (brighter, for polarity "bright"), each connected piece after an opening of
radius `opening_radius` and hole filling is scored:

    score = contrast * solidity^2 * area^(1/4) * exp(-centre_weight * d) * border

    contrast = (mean of x on the ring - mean of x inside) / std(x)      (> 0, else dropped)
               ring: the valid pixels within `rim_band` of the piece, outside it
               (x the smoothed object channel, negated for polarity "bright")
    solidity = area / area of its convex hull         (a mass is compact; bands are not)
    area     = the piece's share of the valid pixels, kept within [min_area, max_area]
    d        = centroid distance from the image centre / half-diagonal (as the lesion rule)
    border   = border_penalty if the piece touches the image border, else 1

The best-scoring piece is the object. The terms and their form were fixed before any
result on ultrasound was seen; their constants are the lesion rule's (`centre_weight`,
`border_penalty`, `opening_radius`, `rim_band` from `ObjectConfig`) and `MIN_AREA`,
`MAX_AREA` below. The acoustic shadow beneath a tumour touches the lower border or is not
compact; the frame is outside `valid`; the skin line is bright and thin.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage

from sgscn_jax.evaluation.regions import ball, border_ring, components, convex_hull, fill_holes
from sgscn_jax.evaluation.regions import open_mask

MIN_AREA = 0.005   # of the valid pixels
MAX_AREA = 0.6


class Candidate(NamedTuple):
  mask: np.ndarray      # [*spatial] bool at analysis size
  score: float
  contrast: float
  solidity: float
  area: float           # share of the valid pixels
  touches_border: bool
  level: int            # the hierarchy level (0 = every cluster) where the region first forms


def distinct_regions(lookups: Sequence[np.ndarray]) -> list[tuple[int, np.ndarray]]:
  """Every region the hierarchy forms, once: (first level, member cluster indices), finest
  first (the K clusters, then one union per merge)."""
  seen, out = set(), []
  for level, lookup in enumerate(lookups):
    for region in range(int(lookup.max()) + 1):
      members = np.flatnonzero(lookup == region)
      key = members.tobytes()
      if key not in seen:
        seen.add(key)
        out.append((level, members))
  return out


def score_piece(piece: np.ndarray, x: np.ndarray, valid: np.ndarray, spread: float,
                ring_width: int, centre_weight: float, border_penalty: float,
                level: int = 0) -> Candidate | None:
  """The score of one candidate piece (module docstring); None if it is outside the area
  bounds or not darker than its ring."""
  area = piece.sum() / max(valid.sum(), 1)
  if not MIN_AREA <= area <= MAX_AREA:
    return None
  ring = ndimage.binary_dilation(piece, ball(ring_width, piece.ndim)) & ~piece & valid
  if not ring.any():
    return None
  contrast = (x[ring].mean() - x[piece].mean()) / max(spread, 1e-12)
  if contrast <= 0:
    return None
  solidity = piece.sum() / max(convex_hull(piece).sum(), 1)
  centre = (np.asarray(piece.shape) - 1) / 2
  d = np.linalg.norm(np.argwhere(piece).mean(0) - centre) / max(np.linalg.norm(centre), 1e-12)
  touches = bool((piece & border_ring(piece.shape)).any())
  score = (contrast * solidity ** 2 * area ** 0.25 * np.exp(-centre_weight * d)
           * (border_penalty if touches else 1.0))
  return Candidate(piece, float(score), float(contrast), float(solidity), float(area),
                   touches, level)


def find_mass(dense: np.ndarray, lookups: Sequence[np.ndarray], x: np.ndarray,
              threshold: float, *, polarity: str = "dark", opening_radius: int = 2,
              ring_width: int = 8, centre_weight: float = 4.0,
              border_penalty: float = 0.3) -> Candidate | None:
  """The best-scoring mass among the hierarchy's regions (module docstring).

  Args:
    dense: `[*spatial]` cluster indices 0..K-1 at analysis size, -1 outside `valid`.
    lookups: the hierarchy's levels (`hierarchy.merge_sequence`), cluster -> region.
    x: `[*spatial]` the smoothed object channel.
    threshold: its Otsu threshold; regions on the polarity's side of it are candidates.
    polarity: "dark" (hypoechoic) or "bright".

  Returns:
    The best `Candidate`, or None when no region qualifies.
  """
  valid = dense >= 0
  sign = 1.0 if polarity == "dark" else -1.0
  y = sign * x
  spread = float(y[valid].std())
  best = None
  for level, members in distinct_regions(lookups):
    region = np.isin(dense, members)
    if not region.any() or sign * (x[region].mean() - threshold) > 0:
      continue
    comp, area = components(open_mask(region, opening_radius))
    for c in np.flatnonzero(area[1:] >= MIN_AREA * valid.sum()) + 1:
      found = score_piece(fill_holes(comp == c) & valid, y, valid, spread, ring_width,
                          centre_weight, border_penalty, level)
      if found is not None and (best is None or found.score > best.score):
        best = found
  return best
