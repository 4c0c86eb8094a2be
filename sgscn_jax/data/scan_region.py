"""The scan region of a B-mode ultrasound image: the pixels the probe imaged, without the
dark frame around them and the marks drawn on them (text, scales, logos, calipers, colour
markers), and the depth region below the last tissue.

    region = find_scan_region(image)          # image [H, W, C] float in [0, 1]
    region.valid                              # [H, W] bool: score and find objects here
    clean = fill_outside(grey, region.marks)  # the marks painted over
    depth = depth_region(grey, region.valid)  # [H, W] bool: below the beam's reach

Rules (host side, NumPy and scipy.ndimage; thresholds on [0, 1] intensities, sizes as
fractions of the image's long side L or of its area H * W):

* colour markers: pixels whose chroma `max_c - min_c` exceeds `marker_chroma` = 0.15
  (B-mode is grey, so any colour is drawn on it: arrows, coloured calipers, Doppler boxes);
* text, scales and logos: bright (`>= text_level` = 0.75) small (each connected piece
  under `text_area` = 0.3 % of the image) pieces on a dark ground (the mean of the 2-pixel
  ring around the piece `<= text_ground` = 0.2), anywhere in the image: burnt-in labels,
  depth scales and rulers, logos, frame counters. Bright speckle grains sit on tissue, not
  on a dark ground;
* calipers: the white '+' / 'x' a sonographer leaves on a mass and its dotted line:
  pixels `>= caliper_level` = 0.7 that stand `>= caliper_contrast` = 0.25 above the grey
  opening of the image by a square of side `s = max(5, round(caliper_width * L))`
  (`caliper_width` = 0.012: strokes thinner than s), in pieces (8-connected) of at most
  `caliper_area` = 0.1 % of the image whose values are flat (standard deviation
  `<= caliper_flat` = 0.035: graphics are drawn in one grey, speckle grains peak). This
  test does not need a dark ground, so it finds marks drawn over tissue;
* every mark is dilated by `mark_margin` = 2 px (anti-aliased edges);
* frame: in each column, the run of near-black pixels (`<= frame_level` = 0.03 after a
  5x5 median, which removes speckle) that starts at the image's TOP row (marks found above,
  such as a logo or a depth scale on the frame, do not end a run), when the runs make up
  at least `frame_area` = 1 % of the image: a sector scan's wedges outside the fan, a
  linear scan's side bars and scale strips, black corners. The top of a B-mode image is
  the skin under the probe, never dark, so an anechoic cyst or the dark depth below the
  tissue, which have tissue above them, is never frame, even where it reaches the sides
  or the bottom;
* valid = not (frame or marks), its holes filled (a cyst enclosed by tissue is scanned).

The depth region (`depth_region`) is not removed from `valid` (the beam reached it; a
mask may lie in it, and it is scored): the object rule reads it (`evaluation.masses`).

Like DRIVE's field of view, `valid` is where clustering is scored and where the object step
looks; `fill_outside` gives the method an image without the drawn marks (each mark pixel
takes the value of its nearest unmarked pixel).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

# depth_region's constants (its docstring).
DEPTH_LEVEL = 0.35
DEPTH_QUANTILE = 0.9
DEPTH_MIN_ROWS = 0.04


class ScanRegion(NamedTuple):
  valid: np.ndarray    # [H, W] bool: imaged pixels, marks excluded
  frame: np.ndarray    # [H, W] bool: the dark frame outside the image
  marks: np.ndarray    # [H, W] bool: markers, text, scales, logos and calipers (dilated)
  calipers: np.ndarray  # [H, W] bool: the caliper marks among `marks` (undilated)
  text: np.ndarray     # [H, W] bool: text, scales and logos among `marks` (undilated)


def grey(image: np.ndarray) -> np.ndarray:
  """`[H, W]` mean over channels of `[H, W, C]` (or `[H, W]` as it is)."""
  image = np.asarray(image, np.float32)
  return image.mean(-1) if image.ndim == 3 else image


def _text(g: np.ndarray, level: float, max_area: float, ground: float) -> np.ndarray:
  """Bright small pieces on a dark 2-pixel ring (module docstring)."""
  h, w = g.shape
  out = np.zeros((h, w), bool)
  labels, n = ndimage.label(g >= level)
  if not n:
    return out
  area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
  boxes = ndimage.find_objects(labels)
  for piece in np.flatnonzero(area < max_area * h * w) + 1:
    rows, cols = boxes[piece - 1]
    box = (slice(max(rows.start - 2, 0), rows.stop + 2),
           slice(max(cols.start - 2, 0), cols.stop + 2))
    own = labels[box] == piece
    ring = ndimage.binary_dilation(own, iterations=2) & (labels[box] == 0)
    if ring.any() and g[box][ring].mean() <= ground:
      out[box] |= own
  return out


def _is_cross(piece: np.ndarray, length: int) -> bool:
  """Whether `piece` holds a '+' (a horizontal and a vertical straight stroke of at least
  `length` pixels) or an 'x' (both diagonals, `length / sqrt 2` pixels each)."""
  def holds(line):
    return ndimage.binary_opening(piece, line).any()
  if holds(np.ones((1, length), bool)) and holds(np.ones((length, 1), bool)):
    return True
  diagonal = np.eye(max(3, int(round(length / np.sqrt(2)))), dtype=bool)
  return holds(diagonal) and holds(diagonal[::-1])


def _calipers(g: np.ndarray, level: float, contrast: float, width: float,
              max_area: float, flat: float, min_pixels: int, tone: float,
              arm: float) -> np.ndarray:
  """Thin bright strokes drawn over the image: flat ones, and '+' / 'x' crosses (module
  docstring)."""
  h, w = g.shape
  side = max(5, int(round(width * max(h, w))))
  bright = (g >= level) & (g - ndimage.grey_opening(g, size=(side, side)) >= contrast)
  labels, n = ndimage.label(bright, np.ones((3, 3), bool))
  if not n:
    return np.zeros((h, w), bool)
  index = np.arange(1, n + 1)
  area = ndimage.sum(np.ones_like(g), labels, index)
  mean = ndimage.mean(g, labels, index)
  spread = np.sqrt(np.maximum(ndimage.variance(g, labels, index), 0.0))
  small = area <= max(max_area * h * w, min_pixels)
  drawn = (spread <= flat) & small
  strokes = drawn & (area >= min_pixels) & (mean >= level + 0.1)
  length = max(7, int(round(arm * max(h, w))))
  boxes = ndimage.find_objects(labels)
  for i in np.flatnonzero(small & ~strokes & (area >= 2 * length)):
    rows, cols = boxes[i]
    if min(rows.stop - rows.start, cols.stop - cols.start) >= length // 2 and _is_cross(
        np.pad(labels[boxes[i]] == i + 1, 1), length):
      strokes[i] = True
  if not strokes.any():
    return np.zeros((h, w), bool)
  # the dots of a caliper's dotted line: small flat pieces in a stroke's grey, inside the
  # box that the strokes span (a dotted line joins two calipers)
  found = np.isin(labels, index[strokes])
  rows, cols = np.flatnonzero(found.any(1)), np.flatnonzero(found.any(0))
  box = np.zeros((h, w), bool)
  box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
  inside = ndimage.maximum(box, labels, index) > 0
  dots = drawn & inside & (np.abs(mean[:, None] - mean[strokes][None, :]).min(1) <= tone)
  return found | np.isin(labels, index[dots])


def find_scan_region(image: np.ndarray, *, marker_chroma: float = 0.15,
                     mark_margin: int = 2, text_level: float = 0.75,
                     text_area: float = 0.003, text_ground: float = 0.2,
                     caliper_level: float = 0.7, caliper_contrast: float = 0.25,
                     caliper_width: float = 0.012, caliper_area: float = 0.001,
                     caliper_flat: float = 0.02, caliper_pixels: int = 16,
                     caliper_tone: float = 0.02, caliper_arm: float = 0.02,
                     frame_level: float = 0.03, frame_area: float = 0.01) -> ScanRegion:
  """The scan region of `image` `[H, W, C]` or `[H, W]` in [0, 1] (module docstring)."""
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  g = grey(image)
  marks = np.zeros((h, w), bool)
  if image.ndim == 3 and image.shape[-1] >= 3:
    marks |= (image.max(-1) - image.min(-1)) > marker_chroma
  text = _text(g, text_level, text_area, text_ground)
  calipers = _calipers(g, caliper_level, caliper_contrast, caliper_width, caliper_area,
                       caliper_flat, caliper_pixels, caliper_tone, caliper_arm) & ~text
  marks |= text | calipers
  if mark_margin and marks.any():
    marks = ndimage.binary_dilation(marks, iterations=mark_margin)
  dark = ndimage.median_filter(g, 5) <= frame_level
  # each column's run of dark (or marked: a logo or scale on the frame) pixels from the top
  run = np.cumprod(dark | marks, axis=0).astype(bool) & dark
  frame = run if run.mean() >= frame_area else np.zeros_like(run)
  valid = ndimage.binary_fill_holes(~frame) & ~marks
  return ScanRegion(valid, frame, marks, calipers, text)


def depth_region(g: np.ndarray, valid: np.ndarray | None = None, *,
                 level: float = DEPTH_LEVEL, quantile: float = DEPTH_QUANTILE,
                 min_rows: float = DEPTH_MIN_ROWS) -> np.ndarray:
  """The depth region: the rows below the last tissue, where the beam no longer returns echo.

  A row r is dark when the `quantile` (0.9) of its valid values is under `level` (0.35)
  times the same quantile over every valid pixel:

      q(r) = quantile_{x valid in row r} g(r, x),  dark(r) = q(r) < level * quantile_{valid} g

  The depth region is the run of dark rows that ends at the last valid row, when it is at
  least `min_rows` (4 %) of the valid rows tall; empty otherwise. A whole row's upper
  quantile must be dark, so an acoustic shadow under a mass (dark in some columns only) or
  a dark mass is not depth; rows only (a linear probe's depth is level; on a sector scan
  the row is an approximation of the arc).

  Args:
    g: `[H, W]` grey (smoothed or not) in [0, 1].
    valid: optional `[H, W]` bool scan region.

  Returns:
    `[H, W]` bool, inside `valid`.
  """
  g = np.asarray(g, np.float64)
  valid = np.ones(g.shape, bool) if valid is None else np.asarray(valid, bool)
  out = np.zeros(g.shape, bool)
  rows = np.flatnonzero(valid.any(1))
  if len(rows) < 2:
    return out
  reference = np.quantile(g[valid], quantile)
  dark = np.array([np.quantile(g[r][valid[r]], quantile) < level * reference for r in rows])
  if not dark[-1]:
    return out
  first = len(dark) - (np.argmin(dark[::-1]) if not dark.all() else len(dark))
  if len(dark) - first < max(1, min_rows * len(rows)):
    return out
  out[rows[first]:] = True
  return out & valid


def fill_outside(image: np.ndarray, marks: np.ndarray) -> np.ndarray:
  """`image` (`[H, W]` or `[H, W, C]`) with each pixel of `marks` replaced by its nearest
  unmarked pixel's value (nothing to fill, or nothing unmarked: unchanged)."""
  marks = np.asarray(marks, bool)
  if not marks.any() or marks.all():
    return image
  _, (rows, cols) = ndimage.distance_transform_edt(marks, return_indices=True)
  return image[rows, cols]
