"""Pictures a person can look at: overlays, label colours, montages.

All on the host side (NumPy, no JAX). `overlay` draws the outlines of a prediction and
of the ground truth on the image; `label_colours` gives every label id a fixed colour;
`montage` puts one row per case side by side (image | ground truth | prediction |
labels). Every function returns a uint8 array; write it with `io.write_png`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

PRED_COLOUR = (255, 255, 0)  # Yellow: outline of the prediction.
GT_COLOUR = (0, 255, 255)  # Cyan: outline of the ground truth.
OBJECT_COLOUR = (255, 0, 255)  # Magenta: outline of the mask-free object.


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Display copy of an image: `[H, W]`, `[H, W, 1]` or `[H, W, 3]` -> uint8 `[H, W, 3]`.

  uint8 input is kept; anything else is read as float in `[0, 1]`, clipped, scaled by
  255 and rounded. Grey is repeated to three channels (for display only).
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"expected [H, W], [H, W, 1] or [H, W, 3], got {image.shape}")
  if image.dtype != np.uint8:
    image = np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image.copy()


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
  """Inner outline of a mask for drawing: `mask & ~erode(mask, width)`.

  The erosion uses the 3 x 3 square (8-neighbourhood), `width` times, and treats
  pixels outside the image as background, so a mask that touches the image edge is
  closed by an outline along that edge. (The 3 x 3 square gives an unbroken,
  4-connected line; `metrics.boundary`, for distances, erodes with the 4-neighbourhood.)

  Args:
    mask: bool `[H, W]`.
    width: outline thickness in pixels (>= 1).

  Returns:
    bool `[H, W]`, True on the `width` outermost pixel rings of the mask.
  """
  mask = np.asarray(mask, dtype=bool)
  eroded = mask
  for _ in range(max(int(width), 1)):
    p = np.pad(eroded, 1, constant_values=False)
    h, w = eroded.shape
    out = np.ones_like(eroded)
    for dy in range(3):
      for dx in range(3):
        out &= p[dy:dy + h, dx:dx + w]
    eroded = out
  return mask & ~eroded


def overlay(image: np.ndarray, pred: Optional[np.ndarray], gt: Optional[np.ndarray] = None,
            *, width: int = 1, pred_colour: Tuple[int, int, int] = PRED_COLOUR,
            gt_colour: Tuple[int, int, int] = GT_COLOUR, obj: Optional[np.ndarray] = None,
            obj_colour: Tuple[int, int, int] = OBJECT_COLOUR) -> np.ndarray:
  """The image with the outlines of the prediction and of the ground truth.

  Outlines are `outline(mask, width)` painted opaque: ground truth first, prediction on
  top, so a pixel on both outlines shows the prediction's colour.

  Args:
    image: `[H, W, C]` (C = 1 or 3) or `[H, W]`, float in `[0, 1]` or uint8.
    pred: bool `[H, W]` or None.
    gt: bool `[H, W]` or None.
    width: outline thickness in pixels.
    pred_colour: RGB of the prediction's outline (default yellow).
    gt_colour: RGB of the ground truth's outline (default cyan).
    obj: bool `[H, W]` or None: the mask-free object, outlined last (default magenta).
    obj_colour: RGB of the object's outline.

  Returns:
    uint8 `[H, W, 3]`.
  """
  out = to_rgb_uint8(image)
  for mask, colour in ((gt, gt_colour), (pred, pred_colour), (obj, obj_colour)):
    if mask is None:
      continue
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != out.shape[:2]:
      raise ValueError(f"mask {mask.shape} does not match image {out.shape[:2]}")
    out[outline(mask, width)] = np.asarray(colour, dtype=np.uint8)
  return out


def label_colours(labels: np.ndarray) -> np.ndarray:
  """A fixed colour per label id: int `[H, W]` -> uint8 `[H, W, 3]`.

  Label `l >= 0` gets the HSV colour `h = frac(0.1 + 0.618034 l)`,
  `s = 0.55 + 0.4 frac(0.754878 l)`, `v = 0.95 - 0.3 frac(0.569840 l)` (low-discrepancy
  steps, so nearby ids look different); negative labels are black. The colour depends on
  the id only, never on which other labels are present.
  """
  labels = np.asarray(labels)
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers, got {labels.dtype}")
  ids, inverse = np.unique(labels, return_inverse=True)
  l = ids.astype(np.float64)
  hue = np.mod(0.1 + 0.6180339887 * l, 1.0)
  sat = 0.55 + 0.4 * np.mod(0.7548776662 * l, 1.0)
  val = 0.95 - 0.3 * np.mod(0.5698402910 * l, 1.0)
  k = np.mod(np.array([5.0, 3.0, 1.0])[None, :] + hue[:, None] * 6.0, 6.0)
  rgb = val[:, None] - val[:, None] * sat[:, None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)
  palette = np.round(rgb * 255.0).astype(np.uint8)
  palette[ids < 0] = 0
  return palette[inverse.reshape(labels.shape)]


def _agreement(pred: np.ndarray, gt: Optional[np.ndarray]) -> np.ndarray:
  """Prediction panel: white = true positive, orange = false positive, blue = missed."""
  pred = np.asarray(pred, dtype=bool)
  out = np.zeros(pred.shape + (3,), np.uint8)
  if gt is None:
    out[pred] = 255
    return out
  gt = np.asarray(gt, dtype=bool)
  out[pred & gt] = (255, 255, 255)
  out[pred & ~gt] = (240, 110, 30)
  out[~pred & gt] = (40, 120, 240)
  return out


def _resize(panel: np.ndarray, height: int, smooth: bool) -> np.ndarray:
  """uint8 `[H, W, 3]` -> `[height, round(W * height / H), 3]`."""
  h, w = panel.shape[:2]
  new_w = max(1, int(round(w * height / h)))
  if (h, w) == (height, new_w):
    return panel
  if smooth:
    try:
      from PIL import Image
      return np.asarray(Image.fromarray(panel).resize((new_w, height), Image.BILINEAR))
    except ImportError:
      pass
  rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
  cols = np.minimum((np.arange(new_w) + 0.5) * w / new_w, w - 1).astype(int)
  return panel[rows][:, cols]


def _fit_mask(mask: Optional[np.ndarray], height: Optional[int]) -> Optional[np.ndarray]:
  """A mask resized by nearest neighbour to `height` rows (unchanged if None)."""
  if mask is None or not height:
    return mask
  return _resize(np.asarray(mask, np.uint8)[..., None], int(height), False)[..., 0] > 0


def _draw_text(canvas: np.ndarray, items: Sequence[Tuple[int, int, str]]) -> np.ndarray:
  """Draws `(x, y, text)` items in black with Pillow's default font, if it can."""
  try:
    from PIL import Image, ImageDraw, ImageFont
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for x, y, text in items:
      draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(img).copy()
  except Exception:  # No Pillow or no usable font: the montage goes without text.
    return canvas


def _text_height() -> int:
  """Height of one text line (with margin), or 0 if no text can be drawn."""
  try:
    from PIL import Image, ImageDraw, ImageFont
    box = ImageDraw.Draw(Image.new("RGB", (8, 8))).textbbox(
        (0, 0), "Ag", font=ImageFont.load_default())
    return int(box[3]) + 4
  except Exception:
    return 0


MontageRow = Tuple  # (title, image, gt, pred, labels[, agreement]); see `montage`


def montage(rows: Sequence[MontageRow], *, panel_height: Optional[int] = None,
            gap: int = 4, outlines: bool = False, background: int = 255,
            prediction_header: str = "prediction") -> np.ndarray:
  """One row per case: image | ground truth | prediction | labels.

  Panels: the image (with `overlay` outlines if `outlines`); the ground truth in white
  on black; the prediction coloured by agreement with the ground truth (white = true
  positive, orange = false positive, blue = missed lesion, black = true negative; plain
  white if there is no ground truth); `label_colours(labels)`. A `None` panel stays
  blank; the labels column appears only if some row has labels. Rows may have different
  sizes; with `panel_height` every panel is resized to that height (masks and labels by
  nearest neighbour). Each row gets its title above it and the montage a header line,
  if Pillow can draw text; otherwise no text is drawn.

  Args:
    rows: `(title, image, gt, pred, labels)` per case, optionally with a sixth entry
      `agreement` (uint8 `[H, W]`, 255 = every seed agrees: shown in grey in a last column);
      image `[H, W, C]` as in `overlay`, gt / pred bool `[H, W]`, labels int `[H, W]`, each
      may be None but image.
    panel_height: common panel height in pixels, or None for native sizes.
    gap: pixels between panels and between rows.
    outlines: draw the prediction / ground-truth outlines on the image panel.
    background: grey level of the gaps.
    prediction_header: the third column's header (e.g. "object").

  Returns:
    uint8 `[H_total, W_total, 3]`.
  """
  if not rows:
    raise ValueError("montage needs at least one row")
  with_labels = any(r[4] is not None for r in rows)
  with_agreement = any(len(r) > 5 and r[5] is not None for r in rows)
  headers = ["image", "ground truth", prediction_header] + (["labels"] if with_labels else [])
  headers += ["seed agreement"] if with_agreement else []
  line = _text_height()
  built = []
  for title, image, gt, pred, labels, *more in rows:
    img = to_rgb_uint8(image)
    if outlines:  # Drawn at the panel's final size, so that they stay 1 px wide.
      if panel_height:
        img = _resize(img, int(panel_height), True)
      img = overlay(img, _fit_mask(pred, panel_height), _fit_mask(gt, panel_height))
    blank = np.full_like(to_rgb_uint8(image), background)
    panels = [(img, True),
              (np.repeat(np.asarray(gt, bool)[..., None] * np.uint8(255), 3, -1)
               if gt is not None else blank, False),
              (_agreement(pred, gt) if pred is not None else blank, False)]
    if with_labels:
      panels.append((label_colours(labels) if labels is not None else blank, False))
    if with_agreement:
      agreement = more[0] if more else None
      panels.append((np.repeat(np.asarray(agreement, np.uint8)[..., None], 3, -1)
                     if agreement is not None else blank, False))
    if panel_height:
      panels = [(_resize(p, int(panel_height), s), s) for p, s in panels]
    if len({p.shape[0] for p, _ in panels}) > 1:
      raise ValueError(f"row {title!r}: panels of different heights "
                       f"{[p.shape[:2] for p, _ in panels]}; pass panel_height")
    built.append((str(title), [p for p, _ in panels]))
  widths = [sum(p.shape[1] for p in ps) + gap * (len(ps) - 1) for _, ps in built]
  total_w = max(widths) + 2 * gap
  total_h = gap + line + sum(line + ps[0].shape[0] + gap for _, ps in built)
  canvas = np.full((total_h, total_w, 3), background, np.uint8)
  texts = []
  x, y = gap, gap
  for name, panel in zip(headers, built[0][1]):
    texts.append((x, y, name))
    x += panel.shape[1] + gap
  y += line
  for title, panels in built:
    texts.append((gap, y, title))
    y += line
    x = gap
    for panel in panels:
      canvas[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
      x += panel.shape[1] + gap
    y += panels[0].shape[0] + gap
  return _draw_text(canvas, [t for t in texts if t[2]]) if line else canvas


def orthogonal_overlay(volume: np.ndarray, pred: Optional[np.ndarray],
                       gt: Optional[np.ndarray] = None,
                       *, spacing: Optional[Sequence[float]] = None,
                       centre: Optional[Sequence[int]] = None, panel_size: int = 256,
                       gap: int = 4) -> np.ndarray:
  """Three orthogonal slices through a volume, side by side, with `overlay`'s outlines.

  Panels (left to right): the slice across axis 0 (`volume[z]`, H x W), across axis 1
  (`volume[:, y]`, D x W) and across axis 2 (`volume[:, :, x]`, D x H), through `centre`
  `(z, y, x)` (default: the centre of `gt`'s bounding box, else of the volume). Each
  panel is resampled to its physical aspect ratio (`spacing` `(dz, dy, dx)`; nearest
  neighbour for the masks) and scaled so its longest side is at most `panel_size`.
  The arrays are drawn as given: `volume_io.display_view` first puts a NIfTI volume in
  the radiological screen orientation.

  Args:
    volume: `[D, H, W, C]` or `[D, H, W]`, float in [0, 1].
    pred, gt: bool `[D, H, W]` or None.

  Returns:
    uint8 `[h, w, 3]`.
  """
  from sgscn_jax.data import resize  # host-side resampling helpers
  volume = np.asarray(volume, np.float32)
  if volume.ndim == 3:
    volume = volume[..., None]
  shape = volume.shape[:3]
  spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
  if centre is None:
    where = np.argwhere(gt) if gt is not None and np.any(gt) else None
    centre = (tuple(int(c) for c in (where.min(0) + where.max(0)) // 2) if where is not None
              else tuple(n // 2 for n in shape))
  panels = []
  for axis in range(3):
    index = tuple(int(centre[a]) if a == axis else slice(None) for a in range(3))
    rows, cols = [a for a in range(3) if a != axis]
    height, width = shape[rows] * spacing[rows], shape[cols] * spacing[cols]
    scale = panel_size / max(height, width)
    target = (max(2, int(round(height * scale))), max(2, int(round(width * scale))))
    image = resize.resize_image(volume[index], target)
    masks = [None if m is None else resize.labels_to_shape(np.asarray(m)[index], target)
             for m in (pred, gt)]
    panels.append(overlay(image, masks[0], masks[1]))
  height = max(p.shape[0] for p in panels)
  canvas = np.zeros((height, sum(p.shape[1] for p in panels) + gap * 2, 3), np.uint8)
  x = 0
  for p in panels:
    canvas[: p.shape[0], x:x + p.shape[1]] = p
    x += p.shape[1] + gap
  return canvas
