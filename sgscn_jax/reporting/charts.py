"""Figures of a comparison: a grouped bar chart and a grid of cases (host side, Pillow).

`bar_chart` draws groups (e.g. metrics) of bars (e.g. loss variants) with values written
on the bars and error bars; `case_grid` puts one case per row and one picture per column
(image, ground truth, each method's selected segment) with headers and captions;
`segment_panel` is such a picture. Every function returns uint8 `[H, W, 3]`; the sizes
depend only on the arguments (never on the font), so they can be tested.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sgscn_jax.reporting import overlays

Colour = Tuple[int, int, int]
# Bars: a palette that stays distinguishable in grey (decreasing lightness).
SERIES_COLOURS: Tuple[Colour, ...] = ((166, 206, 227), (31, 120, 180), (8, 48, 107),
                                      (178, 223, 138), (51, 160, 44), (0, 68, 27))
SEGMENT_COLOUR: Colour = (255, 200, 0)   # tint of a selected segment
LINE = 14        # pixels per text line in a case grid (header and caption)
_FONT_SIZE = 11


def _font(size: int = _FONT_SIZE):
  return ImageFont.load_default(size=size)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
  box = draw.textbbox((0, 0), text, font=font)
  return int(box[2] - box[0])


def nice_limit(value: float) -> float:
  """The axis maximum: `value` rounded up to 1, 2 or 5 times a power of ten (>= 1)."""
  if not math.isfinite(value) or value <= 1.0:
    return 1.0
  power = 10.0 ** math.floor(math.log10(value))
  for step in (1.0, 2.0, 5.0, 10.0):
    if value <= step * power * (1 + 1e-9):
      return step * power
  return 10.0 * power


def bar_chart(groups: Sequence[str], series: Sequence[Tuple[str, Sequence[float],
                                                            Sequence[float]]],
              *, title: str = "", y_label: str = "%", size: Tuple[int, int] = (720, 420),
              y_max: Optional[float] = None) -> np.ndarray:
  """A grouped bar chart: one group per entry of `groups`, one bar per series in each.

  Args:
    groups: the group names under the x axis (e.g. "DSC ↑", "Jaccard ↑").
    series: `(name, values, errors)` per series, values and errors one per group; a bar
      is drawn from 0 to the value, its error bar from value − error to value + error
      (clipped to the axis), the value written above it; NaN values draw nothing.
    title: text above the plot.
    y_label: the y axis's label.
    size: `(width, height)` of the image in pixels.
    y_max: top of the y axis; default `nice_limit` of the largest value + error.

  Returns:
    uint8 `[height, width, 3]`.
  """
  width, height = size
  img = Image.new("RGB", (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(img)
  font, small = _font(12), _font(10)
  left, right, top, bottom = 62, 16, 30, 70
  x0, x1, y0, y1 = left, width - right, height - bottom, top   # y0 bottom, y1 top of the axis
  tops = [v + (e if math.isfinite(e) else 0.0) for _, vs, es in series for v, e in zip(vs, es)
          if math.isfinite(v)]
  y_max = y_max or nice_limit(max(tops, default=1.0))
  to_y = lambda v: y0 - (y0 - y1) * min(max(v, 0.0), y_max) / y_max
  # axes, ticks, grid
  for i in range(6):
    v = y_max * i / 5
    y = to_y(v)
    draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
    draw.line([(x0 - 4, y), (x0, y)], fill=(0, 0, 0))
    label = f"{v:g}"
    draw.text((x0 - 6 - _text_width(draw, label, small), y - 6), label, fill=(0, 0, 0),
              font=small)
  draw.line([(x0, y0), (x0, y1)], fill=(0, 0, 0))
  draw.line([(x0, y0), (x1, y0)], fill=(0, 0, 0))
  if y_label:  # written upwards along the y axis
    box = draw.textbbox((0, 0), y_label, font=small)
    strip = Image.new("RGB", (box[2] + 2, box[3] + 2), (255, 255, 255))
    ImageDraw.Draw(strip).text((1, 1), y_label, fill=(0, 0, 0), font=small)
    strip = strip.rotate(90, expand=True)
    img.paste(strip, (4, int(max(y1, (y0 + y1 - strip.height) / 2))))
  if title:
    draw.text(((width - _text_width(draw, title, font)) // 2, 8), title, fill=(0, 0, 0),
              font=font)
  # bars
  n_groups, n_series = max(len(groups), 1), max(len(series), 1)
  group_w = (x1 - x0) / n_groups
  bar_w = group_w * 0.8 / n_series
  for g, name in enumerate(groups):
    gx = x0 + g * group_w + group_w * 0.1
    for s, (_, values, errors) in enumerate(series):
      v, e = float(values[g]), float(errors[g])
      if not math.isfinite(v):
        continue
      bx = gx + s * bar_w
      colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
      draw.rectangle([bx + 2, to_y(v), bx + bar_w - 2, y0], fill=colour, outline=(0, 0, 0))
      cx = bx + bar_w / 2
      if math.isfinite(e) and e > 0:
        lo, hi = to_y(v - e), to_y(v + e)
        draw.line([(cx, lo), (cx, hi)], fill=(0, 0, 0), width=1)
        draw.line([(cx - 4, lo), (cx + 4, lo)], fill=(0, 0, 0))
        draw.line([(cx - 4, hi), (cx + 4, hi)], fill=(0, 0, 0))
      text = f"{v:.1f}"
      ty = min(to_y(v), to_y(v + (e if math.isfinite(e) else 0.0))) - 14
      draw.text((cx - _text_width(draw, text, small) / 2 + 6, max(ty, y1 - 14)), text,
                fill=(0, 0, 0), font=small)
    draw.text((x0 + g * group_w + (group_w - _text_width(draw, name, font)) / 2, y0 + 6),
              name, fill=(0, 0, 0), font=font)
  # legend, under the group names
  lx, ly = x0, y0 + 28
  for s, (name, _, _) in enumerate(series):
    colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
    draw.rectangle([lx, ly + 2, lx + 12, ly + 12], fill=colour, outline=(0, 0, 0))
    draw.text((lx + 16, ly), name, fill=(0, 0, 0), font=small)
    lx += 28 + _text_width(draw, name, small)
    if lx > x1 - 80 and s + 1 < len(series):
      lx, ly = x0, ly + 16
  return np.asarray(img).copy()


def _fit(panel: np.ndarray, height: int, width: int) -> np.ndarray:
  """`panel` resized (bilinear) to exactly `[height, width, 3]`."""
  if panel.shape[:2] == (height, width):
    return panel
  return np.asarray(Image.fromarray(panel).resize((width, height), Image.BILINEAR))


def panel_size(shape: Sequence[int], height: int) -> Tuple[int, int]:
  """`(height, round(height * w / h))`: a panel's size for an image `[h, w, ...]`."""
  return int(height), max(1, int(round(height * shape[1] / shape[0])))


def nearest(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """A mask `[h, w]` resampled to `size` by nearest neighbour (pixel centres)."""
  h, w = mask.shape[:2]
  rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
  cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
  return np.asarray(mask)[rows][:, cols]


def segment_panel(image: np.ndarray, pred: Optional[np.ndarray], gt: Optional[np.ndarray],
                  *, height: Optional[int] = None, alpha: float = 0.45,
                  colour: Colour = SEGMENT_COLOUR) -> np.ndarray:
  """The image with `pred` tinted (`(1 − alpha) pixel + alpha colour`) and the 1-pixel
  outline of `gt` in cyan (`overlays.overlay`), drawn at `panel_size(image.shape, height)`
  (the image resized bilinearly, the masks by nearest neighbour) or at the image's size:
  uint8 `[H, W, 3]`."""
  rgb = overlays.to_rgb_uint8(image)
  if height is not None:
    size = panel_size(rgb.shape, height)
    rgb = _fit(rgb, *size)
    pred = None if pred is None else nearest(np.asarray(pred, bool), size)
    gt = None if gt is None else nearest(np.asarray(gt, bool), size)
  out = rgb.astype(np.float64)
  if pred is not None:
    pred = np.asarray(pred, bool)
    out[pred] = (1 - alpha) * out[pred] + alpha * np.asarray(colour, np.float64)
  return overlays.overlay(np.round(out).astype(np.uint8), None, gt)


def mask_panel(mask: np.ndarray) -> np.ndarray:
  """A bool mask as white on black, uint8 `[H, W, 3]`."""
  return np.repeat(np.asarray(mask, bool)[..., None] * np.uint8(255), 3, axis=-1)


def case_grid(headers: Sequence[str], rows: Sequence[Tuple[str, Sequence[np.ndarray],
                                                           Sequence[str]]],
              *, panel_height: int = 128, gap: int = 4, footer: str = "") -> np.ndarray:
  """Cases as rows, pictures as columns, with column headers, row titles and captions.

  Every panel is resized (bilinear) to `panel_size` of the first row's first panel, unless
  it has that size already (see `segment_panel(..., height=)`). Layout
  (`LINE` pixels per text line):

    height = gap + LINE + n_rows (LINE + panel_height + LINE + gap) [+ LINE with a footer]
    width  = gap + n_cols (panel_width + gap)

  Args:
    headers: one name per column.
    rows: `(title, panels, captions)` per case: uint8 `[h, w, 3]` panels (one per column)
      and one caption per panel (e.g. "DSC 81.2"; "" for none).
    panel_height: height of every panel in pixels.
    gap: white pixels between panels and rows.
    footer: a line of text under the grid (e.g. what the colours mean).

  Returns:
    uint8 `[height, width, 3]`.
  """
  if not rows:
    raise ValueError("case_grid needs at least one row")
  n_cols = len(headers)
  _, panel_w = panel_size(rows[0][1][0].shape, panel_height)
  width = gap + n_cols * (panel_w + gap)
  height = gap + LINE + len(rows) * (LINE + panel_height + LINE + gap) + (LINE if footer else 0)
  canvas = np.full((height, width, 3), 255, np.uint8)
  texts = [(gap + c * (panel_w + gap), gap, name) for c, name in enumerate(headers)]
  y = gap + LINE
  for title, panels, captions in rows:
    if len(panels) != n_cols or len(captions) != n_cols:
      raise ValueError(f"row {title!r}: {len(panels)} panels and {len(captions)} captions "
                       f"for {n_cols} columns")
    texts.append((gap, y, title))
    y += LINE
    for c, (panel, caption) in enumerate(zip(panels, captions)):
      x = gap + c * (panel_w + gap)
      canvas[y:y + panel_height, x:x + panel_w] = _fit(overlays.to_rgb_uint8(panel),
                                                       panel_height, panel_w)
      if caption:
        texts.append((x, y + panel_height + 1, caption))
    y += panel_height + LINE + gap
  if footer:
    texts.append((gap, y, footer))
  img = Image.fromarray(canvas)
  draw = ImageDraw.Draw(img)
  font = _font()
  for x, ty, text in texts:
    draw.text((x, ty), text, fill=(0, 0, 0), font=font)
  return np.asarray(img).copy()
