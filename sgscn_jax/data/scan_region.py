"""The scan region of a B-mode ultrasound image: the pixels the probe imaged, without the
dark frame around them, the annotation text and the colour markers drawn on them.

    region = find_scan_region(image)          # image [H, W, C] float in [0, 1]
    region.valid                              # [H, W] bool: score and find objects here
    clean = fill_outside(grey, region.marks)  # markers and text painted over

Rules (host side, NumPy, scipy.ndimage and scikit-image; thresholds on [0, 1] intensities):

* markers: pixels whose chroma `max_c - min_c` exceeds `marker_chroma` (B-mode is grey, so
  any colour is drawn on it: arrows, calipers, Doppler boxes), dilated by `mark_margin`;
* text: bright (`>= text_level`), small (each connected piece under `text_area` of the
  image) pieces lying in the margin band (`text_band` of each side) on a dark ground (the
  mean of the 2-pixel ring around the piece `<= text_ground`): burnt-in labels, depth
  scales, frame counters on the frame. Bright speckle grains sit on tissue, not on a dark
  ground, and are not text; text drawn over tissue is not found (markers are, by colour);
* frame: the near-black (`<= frame_level` after a 5x5 median, which removes speckle)
  pixels connected to the image's border, when they make up at least `frame_area` of the
  image (a sector scan's wedge outside the fan, a linear scan's side bars). Dark tissue
  inside the image does not reach the border through near-black pixels;
* valid = not (frame or markers or text); its holes are filled (a dark cyst enclosed by
  tissue is scan region).

Like DRIVE's field of view, `valid` is where clustering is scored and where the object step
looks; `fill_outside` gives the method an image without the drawn marks (each mark pixel
takes the value of its nearest unmarked pixel).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage


class ScanRegion(NamedTuple):
  valid: np.ndarray    # [H, W] bool: imaged pixels, marks excluded
  frame: np.ndarray    # [H, W] bool: the dark frame outside the image
  marks: np.ndarray    # [H, W] bool: colour markers and text drawn on the image


def grey(image: np.ndarray) -> np.ndarray:
  """`[H, W]` mean over channels of `[H, W, C]` (or `[H, W]` as it is)."""
  image = np.asarray(image, np.float32)
  return image.mean(-1) if image.ndim == 3 else image


def _border_touching(mask: np.ndarray) -> np.ndarray:
  labels, n = ndimage.label(mask)
  if n == 0:
    return np.zeros_like(mask)
  edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
  return np.isin(labels, edge[edge > 0])


def find_scan_region(image: np.ndarray, *, marker_chroma: float = 0.15,
                     mark_margin: int = 2, text_level: float = 0.75,
                     text_area: float = 0.003, text_band: float = 0.12,
                     text_ground: float = 0.2,
                     frame_level: float = 0.03, frame_area: float = 0.01) -> ScanRegion:
  """The scan region of `image` `[H, W, C]` or `[H, W]` in [0, 1] (module docstring)."""
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  g = grey(image)
  marks = np.zeros((h, w), bool)
  if image.ndim == 3 and image.shape[-1] >= 3:
    marks |= (image.max(-1) - image.min(-1)) > marker_chroma
  labels, n = ndimage.label(g >= text_level)
  if n:
    area = ndimage.sum(np.ones_like(g), labels, np.arange(1, n + 1))
    band_h, band_w = max(1, int(text_band * h)), max(1, int(text_band * w))
    margin = np.zeros((h, w), bool)
    margin[:band_h], margin[-band_h:], margin[:, :band_w], margin[:, -band_w:] = (
        True, True, True, True)
    inside = ndimage.sum(margin.astype(np.float32), labels, np.arange(1, n + 1)) / area
    small = np.flatnonzero((area < text_area * h * w) & (inside >= 0.999)) + 1
    boxes = ndimage.find_objects(labels)
    for piece in small:
      rows, cols = boxes[piece - 1]
      box = (slice(max(rows.start - 2, 0), rows.stop + 2),
             slice(max(cols.start - 2, 0), cols.stop + 2))
      own = labels[box] == piece
      ring = ndimage.binary_dilation(own, iterations=2) & (labels[box] == 0)
      if ring.any() and g[box][ring].mean() <= text_ground:
        marks[box] |= own
  if mark_margin and marks.any():
    marks = ndimage.binary_dilation(marks, iterations=mark_margin)
  dark = _border_touching(ndimage.median_filter(g, 5) <= frame_level)
  frame = dark if dark.mean() >= frame_area else np.zeros_like(dark)
  valid = ndimage.binary_fill_holes(~frame) & ~marks
  return ScanRegion(valid, frame, marks)


def fill_outside(image: np.ndarray, marks: np.ndarray) -> np.ndarray:
  """`image` (`[H, W]` or `[H, W, C]`) with each pixel of `marks` replaced by its nearest
  unmarked pixel's value (nothing to fill, or nothing unmarked: unchanged)."""
  marks = np.asarray(marks, bool)
  if not marks.any() or marks.all():
    return image
  _, (rows, cols) = ndimage.distance_transform_edt(marks, return_indices=True)
  return image[rows, cols]
