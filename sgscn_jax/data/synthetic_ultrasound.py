"""Synthetic whole B-mode scanner images with every part known: the tests' scanner.

    scan = scanner_image(seed=0)              # defaults: 160 x 200, every part drawn
    scan.image                                # [H, W, 3] float in [0, 1], grey stored as RGB
    scan.parts["mass"], scan.parts["shadow"]  # [H, W] bool each

Drawn in this order (all sizes as fractions of the height H or width W; `Generator`
seeded with `seed`, draws in a fixed order, so one seed gives the same bytes):

1. tissue: multiplicative speckle (`exponential(1)` grains, Gaussian-smoothed with sigma 1
   px, normalised to mean 1) times a depth profile: a bright skin line (rows 4-6 % of H,
   level 0.85; 0.40 above it), a darker subcutaneous band (to 20 %, level 0.30), glandular
   tissue (level 0.45) down to the end of the beam's reach at `depth_start` (default 72 % of H);
   below it the depth region, level 0.03 (noise only);
2. the mass: an ellipse centred at (40 % H, 50 % W), semi-axes 11 % H x 13 % W (times
   `mass_size`), level `mass_level` = 0.12 (hypoechoic), `parts["mass"]`;
3. the posterior shadow: the columns of the mass's middle 80 %, from its lower edge to the
   depth, tissue times 0.3, `parts["shadow"]`;
4. a frame: black wedges at the two top corners (rows < 25 % H within 12 % W of the side,
   cut by a diagonal), `parts["frame"]`;
5. calipers: two white (0.88) '+' marks, arms 4 px, 1 px wide, at the mass's left and
   right ends, and a dotted line of 1-px dots every 4 px between them, `parts["calipers"]`;
6. a depth scale: white ticks (3 x 1 px, 0.9) every 10 rows on a black strip 6 px wide at
   the right edge, `parts["ruler"]` (the strip is frame-coloured, not scanned);
7. text: a white block label ("letters" of 3 x 5 px, 0.95) in the depth region at the
   bottom left, `parts["text"]`;
8. a logo: a white 8 x 8 px ring (0.95) on the top-left frame wedge, `parts["logo"]`.

`parts` also holds "depth" (rows from `depth_start`), "tissue" (the scanned pixels that
are neither depth nor mass) and "scanned" (everything but frame and ruler strip).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage


class Scan(NamedTuple):
  image: np.ndarray          # [H, W, 3] float32 in [0, 1]
  parts: dict                # name -> [H, W] bool


def _speckle(rng: np.random.Generator, shape) -> np.ndarray:
  grains = ndimage.gaussian_filter(rng.exponential(1.0, shape), 1.5)
  return grains / grains.mean()


def scanner_image(seed: int = 0, h: int = 160, w: int = 200, *, depth_start: float = 0.72,
                  mass_size: float = 1.0, mass_level: float = 0.12, shadow: bool = True,
                  frame: bool = True, calipers: bool = True,
                  ruler: bool = True, text: bool = True, logo: bool = True) -> Scan:
  """A synthetic whole scanner image (module docstring); each part can be left out."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  rows = yy / h
  level = np.where(rows < 0.04, 0.40, 0.45)
  level = np.where((rows >= 0.04) & (rows < 0.06), 0.85, level)
  level = np.where((rows >= 0.06) & (rows < 0.20), 0.30, level)
  depth = rows >= depth_start
  level = np.where(depth, 0.03, level)
  grey = level * _speckle(rng, (h, w))
  cy, cx, ay, ax = 0.40 * h, 0.50 * w, 0.11 * h * mass_size, 0.13 * w * mass_size
  mass = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
  grey = np.where(mass, mass_level * _speckle(rng, (h, w)), grey)
  parts = {"mass": mass, "depth": depth}
  cast = np.zeros((h, w), bool)
  if shadow:
    lo = int(np.ceil(cy + ay))
    cast[lo:, int(cx - 0.8 * ax):int(cx + 0.8 * ax) + 1] = True
    cast &= ~mass & ~depth
    grey = np.where(cast, 0.3 * grey, grey)
  parts["shadow"] = cast
  outside = np.zeros((h, w), bool)
  if frame:
    band = int(0.12 * w)
    top = int(0.25 * h)
    left = (yy < top) & (xx < band) & (xx < band * (1 - yy / top))
    right = (yy < top) & (xx >= w - band) & (w - 1 - xx < band * (1 - yy / top))
    outside |= left | right
  parts["frame"] = outside.copy()
  marks = {}
  if calipers:
    cal = np.zeros((h, w), bool)
    r = int(round(cy))
    for c in (int(round(cx - ax)), int(round(cx + ax))):
      cal[r - 4:r + 5, c] = True
      cal[r, c - 4:c + 5] = True
    cal[r, int(cx - ax) + 6:int(cx + ax) - 5:4] = True
    marks["calipers"] = (cal, 0.88)
  if ruler:
    strip = xx >= w - 6
    outside |= strip
    ticks = np.zeros((h, w), bool)
    for r in range(5, h - 2, 10):
      ticks[r, w - 4:w - 1] = True
    marks["ruler"] = (ticks, 0.9)
  if text:
    label = np.zeros((h, w), bool)
    r0 = int(0.88 * h)
    for k in range(3):
      c0 = 8 + 5 * k
      label[r0:r0 + 5, c0] = label[r0:r0 + 5, c0 + 2] = True
      label[r0, c0:c0 + 3] = label[r0 + 2, c0:c0 + 3] = True
    marks["text"] = (label, 0.95)
  if logo:
    ring = np.hypot(yy - 6.5, xx - 6.5)
    marks["logo"] = (frame * ((ring >= 2.5) & (ring <= 4.0)), 0.95)
  grey = np.where(outside, 0.0, grey)
  for name, (mark, value) in marks.items():
    grey = np.where(mark, value, grey)
    parts[name] = mark
  for name in ("calipers", "ruler", "text", "logo"):
    parts.setdefault(name, np.zeros((h, w), bool))
  parts["scanned"] = ~outside
  parts["tissue"] = ~outside & ~depth & ~mass
  image = np.repeat(np.clip(grey, 0, 1)[..., None], 3, -1).astype(np.float32)
  return Scan(image, parts)
