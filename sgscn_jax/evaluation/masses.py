"""The object step's "mass" rule: a compact hypoechoic mass inside tissue, found among the
regions of every level of the cluster hierarchy and read with B-mode anatomy (ultrasound
tumours; docs/OBJECTS.md step 8). Object step version 5 (issue 43).

A tumour in a B-mode image is rarely one cluster: speckle splits it, and a threshold that
separates dark from bright tissue also takes fat lobules, the acoustic shadow beneath the
tumour, the dark depth below the last tissue and dark layers across the image. So every
region that the Ward hierarchy (`hierarchy.merge_sequence`) forms at any level is a
candidate (each cluster, and each union of adjacent clusters that a merge makes: 2K - 1
regions for K clusters), and the image decides its boundary:

1. Pieces (`mass_candidates`). Each region's connected components after an opening by each
   radius of `openings` (2 and 5 px at the 256-px analysis size), each closed (`closing`
   = 3 px) and hole-filled, at least `min_area` (0.3 %) of the scan region. A piece not
   darker than its ring (below) is dropped.
2. Boundary (`refine`). A local Otsu threshold of y inside the window of the valid pixels
   within `refine_band` (16 px, 6 % of the long side) of the piece, and at most
   `refine_band // 4` rows below its lowest row; the piece becomes the components of
   opening({y <= tau} & window) that meet it, hole-filled. A piece that did not reach the
   depth (below) and would after this keeps its own boundary: a mass and its posterior
   shadow are dark together, and the shadow is no mass.
3. Score (`describe_piece`, `mass_score`):

    score = contrast * solidity^solidity_power * area^area_power
            * exp(-centre_weight * d) * exp(darkness_weight * darkness)
            * elongation^(-elongation_power)
            * (lateral_penalty if it touches the scan region's left or right edge)
            * (top_penalty     if it touches the scan region's top edge: the skin line)
            * (deep_penalty    if it reaches the tissue's bottom: the scan region's bottom
                               edge, the rows just above the depth region, or the depth)
            * (above_penalty   if the band above it is not brighter than it)
    and 0 for a layer (a piece touching both the left and the right edge; layer_penalty),
    for a piece lying mostly (> `depth_share` = 1/2) in the depth region, and outside
    [min_area, max_area] (0.3 % to 60 % of the scan region).

    contrast = (mean of y on the ring - mean of y inside) / std(y)     (> 0, else dropped)
               ring: the valid pixels within `ring_width` (8 px) of the piece, outside it
    above    = (mean of y on the `ring_width` rows straight above the piece - mean inside)
               / std(y)
    darkness = (mean of y over the scan region - mean of y inside) / std(y)
    solidity = area / area of the convex hull of its pixels' squares
    elongation = sqrt(largest / smallest eigenvalue of its pixels' coordinate covariance)
    area     = the piece's share of the scan region's pixels
    d        = the centroid's distance, over the half-diagonal, from the reference point:
               the middle column, at `reference_row` of the tissue's extent from its top
               (tissue: from the scan region's top to the depth region, or to the bottom),
               rows weighted by `vertical_weight`

with y the smoothed object channel (negated for polarity "bright"), std over the scan
region, its edges the valid pixels within `edge` = 2 px of a pixel outside it (or of the
image border) straight above, below, left or right (marks inside the image, its holes, are
no edge), and the depth region `data.scan_region.depth_region` of the smoothed channel.
The best-scoring piece is the object.

Anatomy behind the factors: a tumour lies inside tissue, with tissue above it, under the
skin line and the subcutaneous layer; a layer runs across the image; the posterior shadow
is a dark band straight below a mass that reaches the depth, and the depth region lies
below the last tissue. So the depth region, layers and (top_penalty 0) the skin line are
never the object. Every constant is a `MassRule` field; `RULE` holds the data-set prior,
its scoring constants chosen on one shared source and reported on the other
(docs/ULTRASOUND.md; `studies/ultrasound_rule.py`). `LEGACY` is the rule of object step
versions <= 3 (one border penalty for every edge, no depth, layer, darkness or boundary
step, area^(1/4), candidates only on the dark side of the Otsu threshold), kept for
comparisons.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage, spatial

from sgscn_jax.data import channels, scan_region
from sgscn_jax.evaluation.regions import close_mask, components, fill_holes, open_mask


class MassRule(NamedTuple):
  """The constants of the mass rule (module docstring). The defaults are `RULE`: the
  scoring constants chosen on the 60 BUSI images (k-means k = 5 label maps, key 0) by
  `studies.ultrasound_rule`'s grid (solidity^1, area^0.5, centre_weight 4, reference row
  0.35, vertical_weight 1, darkness_weight 1, elongation^-0.5, no lateral, bottom-reaching
  pieces excluded, tissue-above factor 1); the anatomy's (top, layer and depth exclusions)
  and the pieces' are fixed (docs/ULTRASOUND.md)."""
  area_power: float = 0.5
  centre_weight: float = 4.0
  lateral_penalty: float = 1.0
  top_penalty: float = 0.0
  deep_penalty: float = 0.0
  above_penalty: float = 1.0
  layer_penalty: float = 0.0
  depth_share: float = 0.5
  min_area: float = 0.003
  max_area: float = 0.6
  solidity_power: float = 1.0
  reference_row: float = 0.35
  vertical_weight: float = 1.0
  darkness_weight: float = 1.0
  elongation_power: float = 0.5
  # how the candidate pieces are made (`mass_candidates`)
  openings: tuple = (2, 5)
  closing: int = 3
  side: str = "any"
  refine_band: int = 16


LEGACY = MassRule(area_power=0.25, centre_weight=4.0, lateral_penalty=0.3, top_penalty=0.3,
                  deep_penalty=0.3, above_penalty=1.0, layer_penalty=1.0, depth_share=np.inf,
                  min_area=0.005,
                  solidity_power=2.0, reference_row=0.5, vertical_weight=1.0,
                  darkness_weight=0.0, elongation_power=0.0, openings=(2,), closing=0,
                  side="otsu", refine_band=0)
RULE = MassRule()
EDGE = 2


class Candidate(NamedTuple):
  mask: np.ndarray      # [*spatial] bool at analysis size
  score: float
  contrast: float
  solidity: float
  area: float           # share of the valid pixels
  touches_border: bool  # any edge of the scan region
  level: int            # the hierarchy level (0 = every cluster) where the region first forms
  d: float = 0.0        # centroid distance from the centre / half-diagonal
  lateral: bool = False  # touches the scan region's left or right edge
  top: bool = False     # touches its top edge
  deep: bool = False    # reaches its bottom edge, or lies mostly in the depth region
  above: float = 0.0    # contrast of the band above the piece
  row: float = 0.5      # centroid row / height (0 top, 1 bottom)
  col: float = 0.5      # centroid column / width
  darkness: float = 0.0  # (mean of y on the valid pixels - mean of y inside) / std(y)
  aspect: float = 1.0   # the image's height / width
  tissue_top: float = 0.0     # the image's tissue extent, rows / height (`Anatomy`)
  tissue_bottom: float = 1.0
  spans: bool = False   # touches both the left and the right edge: a layer
  elongation: float = 1.0  # major / minor axis of its second moments (>= 1)


class Anatomy(NamedTuple):
  """Where a piece may touch: the scan region's edges and its depth region, `[H, W]` bool."""
  valid: np.ndarray
  top: np.ndarray
  bottom: np.ndarray
  lateral: np.ndarray
  depth: np.ndarray
  left: np.ndarray = None     # the left edge alone (lateral = left | right)
  tissue_top: float = 0.0     # the tissue's first row / height (the scan region's top)
  tissue_bottom: float = 1.0  # its last row + 1 / height (the depth region's first row)


def _edge_band(outside: np.ndarray, axis: int, step: int, width: int) -> np.ndarray:
  """Pixels with a pixel of `outside` (or the image border) within `width` steps along
  `axis` in direction `step` (-1: before, +1: after)."""
  pad = [(0, 0), (0, 0)]
  pad[axis] = (width, 0) if step < 0 else (0, width)
  padded = np.pad(outside, pad, constant_values=True)
  n = outside.shape[axis]
  band = np.zeros_like(outside)
  for k in range(1, width + 1):
    start = width - k if step < 0 else k
    band |= np.take(padded, np.arange(start, start + n), axis=axis)
  return band


def anatomy(x: np.ndarray, valid: np.ndarray, edge: int = EDGE) -> Anatomy:
  """The scan region's top, bottom and lateral edges (`edge` px wide) and its depth region
  for the smoothed channel `x` `[H, W]` (module docstring)."""
  valid = np.asarray(valid, bool)
  outside = ~ndimage.binary_fill_holes(valid)   # marks drawn inside the image are no edge
  top = valid & _edge_band(outside, 0, -1, edge)
  bottom = valid & _edge_band(outside, 0, +1, edge)
  left = valid & _edge_band(outside, 1, -1, edge)
  lateral = left | (valid & _edge_band(outside, 1, +1, edge))
  depth = scan_region.depth_region(x, valid)
  if depth.any():   # the tissue's bottom: also the rows just above the depth region
    bottom |= valid & ~depth & _edge_band(depth, 0, +1, edge)
  h = valid.shape[0]
  rows = np.flatnonzero(valid.any(1))
  first = np.argmax(valid, axis=0)[valid.any(0)]          # each column's first valid row
  tissue_top = float(np.median(first)) / h if len(first) else 0.0
  below = np.flatnonzero(depth.any(1))
  tissue_bottom = (below[0] if len(below) else (rows[-1] + 1 if len(rows) else h)) / h
  return Anatomy(valid, top, bottom, lateral, depth, left, tissue_top, float(tissue_bottom))


def _above_band(piece: np.ndarray, width: int) -> np.ndarray:
  """The pixels within `width` rows straight above a pixel of `piece`, outside it."""
  band = np.zeros_like(piece)
  for k in range(1, width + 1):
    band[:-k] |= piece[k:]
  return band & ~piece


def describe_piece(piece: np.ndarray, y: np.ndarray, where: Anatomy, spread: float,
                   ring_width: int, level: int = 0, where_mean: float = 0.0
                   ) -> tuple[Candidate, float] | None:
  """The features of one candidate piece (module docstring), score 0, and its share in the
  depth region; None if it is not darker (in y) than its ring."""
  valid = where.valid
  rows, cols = np.flatnonzero(piece.any(1)), np.flatnonzero(piece.any(0))
  r0, r1 = max(rows[0] - ring_width - 1, 0), rows[-1] + ring_width + 2
  c0, c1 = max(cols[0] - ring_width - 1, 0), cols[-1] + ring_width + 2
  box = (slice(r0, r1), slice(c0, c1))
  p, v, yb = piece[box], valid[box], y[box]
  ring = (ndimage.distance_transform_edt(~p) <= ring_width) & ~p & v   # the ball's dilation
  if not ring.any():
    return None
  inside = yb[p].mean()
  contrast = (yb[ring].mean() - inside) / max(spread, 1e-12)
  if contrast <= 0:
    return None
  up = _above_band(p, ring_width) & v
  above = (yb[up].mean() - inside) / max(spread, 1e-12) if up.any() else 0.0
  compact = solidity(p)
  coords = np.argwhere(p).astype(np.float64)
  eig = np.linalg.eigvalsh(np.cov(coords.T)) if len(coords) > 2 else np.ones(2)
  elongation = float(np.sqrt(max(eig[-1], 1e-12) / max(eig[0], 1e-12)))
  area = piece.sum() / max(valid.sum(), 1)
  centre = (np.asarray(piece.shape) - 1) / 2
  centroid = coords.mean(0) + (r0, c0)
  d = np.linalg.norm(centroid - centre) / max(np.linalg.norm(centre), 1e-12)
  top = bool((p & where.top[box]).any())
  lateral = bool((p & where.lateral[box]).any())
  on_left = (p & where.left[box]).any()
  spans = bool(on_left and (p & where.lateral[box] & ~where.left[box]).any())
  bottom = bool((p & where.bottom[box]).any())
  in_depth = (p & where.depth[box]).sum() / max(p.sum(), 1)
  found = Candidate(piece, 0.0, float(contrast), compact, float(area),
                    top or lateral or bottom, level, float(d), lateral, top, bottom,
                    float(above), float((centroid[0] + 0.5) / piece.shape[0]),
                    float((centroid[1] + 0.5) / piece.shape[1]),
                    float((where_mean - inside) / max(spread, 1e-12)),
                    float(piece.shape[0] / piece.shape[1]), where.tissue_top,
                    where.tissue_bottom, spans, elongation)
  return found, float(in_depth)


def reference_distance(c: Candidate, reference_row: float = 0.5, vertical_weight: float = 1.0):
  """The centroid's distance from the reference point over the half-diagonal
  (elementwise): the middle column, at `reference_row` of the tissue's extent from its top
  (`tissue_top + reference_row * (tissue_bottom - tissue_top)`: the image's middle row for
  0.5 when there is no depth region)."""
  aspect = np.asarray(c.aspect, np.float64)
  top, bottom = np.asarray(c.tissue_top), np.asarray(c.tissue_bottom)
  dy = (np.asarray(c.row) - (top + reference_row * (bottom - top))) * aspect * vertical_weight
  dx = np.asarray(c.col) - 0.5
  return np.hypot(dy, dx) / (0.5 * np.hypot(aspect, 1.0))


def mass_score(c: Candidate, in_depth, rule: MassRule = RULE):
  """The score of a described piece under `rule` (module docstring); 0 outside the area
  bounds. Elementwise: `c`'s fields and `in_depth` may be arrays (many pieces at once)."""
  area = np.asarray(c.area, np.float64)
  in_the_depth = np.asarray(in_depth) > rule.depth_share   # the depth region: never a mass
  d = reference_distance(c, rule.reference_row, rule.vertical_weight)
  score = (np.asarray(c.contrast) * np.asarray(c.solidity) ** rule.solidity_power
           * area ** rule.area_power * np.exp(-rule.centre_weight * d)
           * np.exp(rule.darkness_weight * np.asarray(c.darkness))
           * np.asarray(c.elongation, np.float64) ** -rule.elongation_power
           * np.where(c.lateral, rule.lateral_penalty, 1.0)
           * np.where(c.spans, rule.layer_penalty, 1.0)
           * np.where(c.top, rule.top_penalty, 1.0)
           * np.where(c.deep, rule.deep_penalty, 1.0)
           * np.where(np.asarray(c.above) <= 0, rule.above_penalty, 1.0))
  score = np.where((area >= rule.min_area) & (area <= rule.max_area) & ~in_the_depth, score,
                   0.0)
  return float(score) if score.ndim == 0 else score


def refine(piece: np.ndarray, y: np.ndarray, valid: np.ndarray, band: int,
           opening_radius: int = 2) -> np.ndarray:
  """A piece's boundary moved to the image's by a local Otsu threshold: within the window of
  the valid pixels at most `band` from the piece (the piece included) and at most
  `band // 4` rows below its lowest row,

      tau = Otsu threshold of y over the window
      out = fill_holes(the components of opening({y <= tau} & window) that meet the piece)

  (the piece itself if nothing is left). The clusters say where the mass is; the image
  says where its edge is: it takes the mass's pixels that the clusters gave to other
  regions and drops the bright ones they took. band 0: the piece unchanged."""
  if band <= 0 or not piece.any():
    return piece
  rows, cols = np.flatnonzero(piece.any(1)), np.flatnonzero(piece.any(0))
  m = band + opening_radius + 2
  box = (slice(max(rows[0] - m, 0), rows[-1] + m + 1),
         slice(max(cols[0] - m, 0), cols[-1] + m + 1))
  p, v, yb = piece[box], valid[box], y[box]
  window = (ndimage.distance_transform_edt(~p) <= band) & v
  # below the piece the window reaches only band // 4: the dark band straight under a
  # mass is its posterior shadow, not more of it
  window[np.arange(window.shape[0]) > rows[-1] - box[0].start + band // 4] = False
  values = yb[window]
  if values.size < 2 or np.ptp(values) <= 0:
    return piece
  tau = channels.otsu_threshold(values)
  grown = open_mask(window & (yb <= tau), opening_radius)
  comp, _ = components(grown)
  keep = np.unique(comp[p & grown])
  kept = np.isin(comp, keep[keep > 0])
  if not kept.any():
    return piece
  out = np.zeros_like(piece)
  out[box] = fill_holes(kept) & v
  return out


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


def _key(piece: np.ndarray) -> tuple:
  """A piece's identity: its box's corner and its packed pixels there."""
  rows, cols = np.flatnonzero(piece.any(1)), np.flatnonzero(piece.any(0))
  return (rows[0], cols[0], rows[-1], cols[-1],
          np.packbits(piece[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]).tobytes())


def _reaches_depth(piece: np.ndarray, where: Anatomy) -> bool:
  """`describe_piece`'s deep test: the tissue's bottom (the scan region's bottom edge, or
  the rows just above the depth region) or the depth region itself."""
  return bool((piece & (where.bottom | where.depth)).any())


def _darker_than_ring(piece: np.ndarray, y: np.ndarray, valid: np.ndarray, width: int) -> bool:
  """Whether the mean of y inside the piece is under its mean on the valid ring of `width`
  pixels around it (the sign of `describe_piece`'s contrast)."""
  rows, cols = np.flatnonzero(piece.any(1)), np.flatnonzero(piece.any(0))
  box = (slice(max(rows[0] - width - 1, 0), rows[-1] + width + 2),
         slice(max(cols[0] - width - 1, 0), cols[-1] + width + 2))
  p = piece[box]
  ring = (ndimage.distance_transform_edt(~p) <= width) & ~p & valid[box]
  return bool(ring.any()) and y[box][ring].mean() > y[box][p].mean()


def solidity(piece: np.ndarray) -> float:
  """Pixel count / the area of the convex hull of the pixels' squares (the hull of the
  corners of its boundary pixels): 1 for a filled rectangle, under 1 for a band that
  bends or a piece with bays."""
  edge = piece & ~ndimage.binary_erosion(piece)
  ys, xs = np.nonzero(edge)
  if len(ys) == 0:
    return 0.0
  corners = np.concatenate([np.stack([ys + dy, xs + dx], 1) for dy in (0, 1) for dx in (0, 1)])
  try:
    hull = spatial.ConvexHull(corners.astype(np.float64))
  except spatial.QhullError:       # a straight line of pixels: its hull is its squares
    return 1.0
  return float(piece.sum() / max(hull.volume, 1.0))


def mass_candidates(dense: np.ndarray, lookups: Sequence[np.ndarray], x: np.ndarray,
                    threshold: float, *, polarity: str = "dark", opening_radius: int = 2,
                    ring_width: int = 8, rule: MassRule | None = None
                    ) -> list[tuple[Candidate, float]]:
  """Every candidate piece with its features and its share in the depth region (module
  docstring), unscored.

  A region is a candidate when its mean is on the polarity's side of `threshold`
  (`rule.side` "otsu"), or always ("any": the ring contrast alone decides). Its pieces are
  the components of its opening by each radius of `rule.openings` (`opening_radius` when
  empty), each closed by `rule.closing` (0: not) and hole-filled; pieces under
  `rule.min_area` of the valid pixels are skipped, and a piece found twice is kept once.

  Args:
    dense: `[H, W]` cluster indices 0..K-1 at analysis size, -1 outside `valid`.
    lookups: the hierarchy's levels (`hierarchy.merge_sequence`), cluster -> region.
    x: `[H, W]` the smoothed object channel.
    threshold: its Otsu threshold.
    polarity: "dark" (hypoechoic) or "bright".
    rule: the `MassRule` whose generation fields apply (default `RULE`).
  """
  rule = RULE if rule is None else rule
  valid = dense >= 0
  sign = 1.0 if polarity == "dark" else -1.0
  y = sign * x
  spread = float(y[valid].std()) if valid.any() else 0.0
  overall = float(y[valid].mean()) if valid.any() else 0.0
  where = anatomy(x, valid)
  smallest = rule.min_area * valid.sum()
  out, seen, tried = [], set(), set()   # pieces described; pieces refined
  for level, members in distinct_regions(lookups):
    region = np.isin(dense, members)
    if not region.any() or (rule.side == "otsu" and sign * (x[region].mean() - threshold) > 0):
      continue
    for radius in rule.openings or (opening_radius,):
      comp, area = components(open_mask(region, radius))
      boxes = ndimage.find_objects(comp)
      for c in np.flatnonzero(area[1:] >= smallest) + 1:
        # closing and hole filling inside the piece's box, with a margin they cannot cross
        margin = rule.closing + 2
        rows, cols = boxes[c - 1]
        box = (slice(max(rows.start - margin, 0), rows.stop + margin),
               slice(max(cols.start - margin, 0), cols.stop + margin))
        small = comp[box] == c
        if rule.closing:
          small = close_mask(small, rule.closing)
        piece = np.zeros_like(valid)
        piece[box] = fill_holes(small) & valid[box]
        if rule.refine_band:
          key = _key(piece)
          if key in tried or not _darker_than_ring(piece, y, valid, ring_width):
            continue
          tried.add(key)
          refined = refine(piece, y, valid, rule.refine_band, opening_radius)
          # the boundary may move, but a piece off the depth does not grow into it (a mass
          # and its posterior shadow are dark together; the shadow is no mass)
          if _reaches_depth(refined, where) and not _reaches_depth(piece, where):
            refined = piece
          piece = refined
          if piece.sum() < smallest:
            continue
        key = _key(piece)
        if key in seen:
          continue
        seen.add(key)
        found = describe_piece(piece, y, where, spread, ring_width, level, overall)
        if found is not None:
          out.append(found)
  return out


def find_mass(dense: np.ndarray, lookups: Sequence[np.ndarray], x: np.ndarray,
              threshold: float, *, polarity: str = "dark", opening_radius: int = 2,
              ring_width: int = 8, rule: MassRule | None = None) -> Candidate | None:
  """The best-scoring mass among the hierarchy's regions (module docstring), under `rule`
  (default `RULE`, read at call time).

  Returns:
    The best `Candidate` (its `score` set), or None when no piece scores above 0.
  """
  rule = RULE if rule is None else rule
  best = None
  for found, in_depth in mass_candidates(dense, lookups, x, threshold, polarity=polarity,
                                         opening_radius=opening_radius,
                                         ring_width=ring_width, rule=rule):
    score = mass_score(found, in_depth, rule)
    if score > 0 and (best is None or score > best.score):
      best = found._replace(score=score, deep=found.deep or in_depth > rule.depth_share)
  return best
