"""Results a person can look at, and files that are never half-written.

Four things live here, all on the host side (NumPy, no JAX):

* **Safe files.** `atomic_write` writes a temporary file in the target's folder and
  renames it over the target with `os.replace`, so a reader (or a rerun after a crash)
  sees either the old file or the new one, never a partial one.
* **Pictures.** `overlay` draws the outlines of a prediction and of the ground truth on
  the image; `label_colours` gives every label id a fixed colour; `montage` puts one row
  per case side by side (image | ground truth | prediction | labels).
* **Per-case results that survive interruption.** A run writes one small JSON file per
  finished case, `out_dir/cases/<case_id>.json` (`write_case`), each atomically. A run
  that is killed loses at most the case it was working on; a rerun can skip the cases
  whose file exists (`read_case`). `collect_rows` then reads every case file, sorts the
  rows by case id (natural order: `c2` before `c10`) and writes `out_dir/results.csv`
  with a stable column order. The CSV is a pure function of the set of case files, so an
  interrupted-and-resumed run and an uninterrupted one give byte-identical summaries.
* **Summaries.** `summarise` gives mean, standard deviation and counts per metric,
  ignoring NaN; `summary_markdown` and `comparison_markdown` render them as Markdown
  tables in the paper's layout (metrics as rows, in %).

`ProgressBar` prints images done, images per minute and time left to stderr.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence,
                    TextIO, Tuple, Union)

import numpy as np

PathLike = Union[str, os.PathLike]
Stats = Dict[str, float]  # {"mean", "std", "n", "n_nan"}

PRED_COLOUR = (255, 255, 0)  # Yellow: outline of the prediction.
GT_COLOUR = (0, 255, 255)  # Cyan: outline of the ground truth.
CASES_DIR = "cases"
RESULTS_CSV = "results.csv"

# Read once at import: setting the umask to read it is not thread-safe.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# ----------------------------------------------------------------------------- files


def atomic_write(path: PathLike, data: Union[bytes, str]) -> Path:
  """Writes `data` to `path` so that `path` is never seen half-written.

  The bytes go to a temporary file in the same folder (same file system), which is
  flushed, fsynced and renamed over `path` with `os.replace` (atomic on POSIX and
  Windows). On any error the temporary file is removed and `path` is untouched. The
  folder is created if needed; the file gets the usual permissions (0o666 & ~umask).

  Args:
    path: the target file.
    data: bytes, or a str written as UTF-8.

  Returns:
    `path` as a `Path`.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(data, str):
    data = data.encode("utf-8")
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def save_png(path: PathLike, image: np.ndarray) -> Path:
  """Writes a uint8 `[H, W]` or `[H, W, 3]` image as PNG, atomically."""
  from PIL import Image  # Pillow comes with imageio.
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
  return atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------------------- images


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
            gt_colour: Tuple[int, int, int] = GT_COLOUR) -> np.ndarray:
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

  Returns:
    uint8 `[H, W, 3]`.
  """
  out = to_rgb_uint8(image)
  for mask, colour in ((gt, gt_colour), (pred, pred_colour)):
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


MontageRow = Tuple[str, np.ndarray, Optional[np.ndarray], Optional[np.ndarray],
                   Optional[np.ndarray]]


def montage(rows: Sequence[MontageRow], *, panel_height: Optional[int] = None,
            gap: int = 4, outlines: bool = False, background: int = 255) -> np.ndarray:
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
    rows: `(title, image, gt, pred, labels)` per case; image `[H, W, C]` as in
      `overlay`, gt / pred bool `[H, W]`, labels int `[H, W]`, each may be None but image.
    panel_height: common panel height in pixels, or None for native sizes.
    gap: pixels between panels and between rows.
    outlines: draw the prediction / ground-truth outlines on the image panel.
    background: grey level of the gaps.

  Returns:
    uint8 `[H_total, W_total, 3]`.
  """
  if not rows:
    raise ValueError("montage needs at least one row")
  with_labels = any(r[4] is not None for r in rows)
  headers = ["image", "ground truth", "prediction"] + (["labels"] if with_labels else [])
  line = _text_height()
  built = []
  for title, image, gt, pred, labels in rows:
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


# ------------------------------------------------------------------------ case files


def _natural_key(case_id: str) -> Tuple[List[Any], str]:
  """Sort key: digit runs compare as numbers (`c2 < c10`), ties by the raw string."""
  parts = re.split(r"(\d+)", case_id)
  return [int(p) if i % 2 else p for i, p in enumerate(parts)], case_id


def _plain(value: Any) -> Any:
  """JSON-ready value: NumPy scalars to Python, NaN to None (JSON has no NaN)."""
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, float) and math.isinf(value):
    return "inf" if value > 0 else "-inf"  # JSON has no infinity either
  return value


def case_path(out_dir: PathLike, case_id: str) -> Path:
  """`out_dir/cases/<name>.json` for a case; ids unsafe as file names get a hash suffix."""
  name = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)
  if name != case_id or name.startswith("."):
    name = f"{name.lstrip('.')}-{hashlib.sha1(case_id.encode()).hexdigest()[:8]}"
  return Path(out_dir) / CASES_DIR / f"{name}.json"


def write_case(out_dir: PathLike, row: Mapping[str, Any]) -> Path:
  """Writes one finished case's row to `out_dir/cases/`, atomically.

  Args:
    out_dir: the run's output folder.
    row: flat mapping of scalars with a `"case_id"` (str); NaN is stored as JSON null
      and read back as NaN.

  Returns:
    The path written.
  """
  if "case_id" not in row:
    raise KeyError("a case row needs a 'case_id'")
  plain = {str(k): _plain(v) for k, v in row.items()}
  plain["case_id"] = str(plain["case_id"])
  text = json.dumps(plain, sort_keys=True, indent=1, allow_nan=False) + "\n"
  return atomic_write(case_path(out_dir, plain["case_id"]), text)


def _load_case(path: Path) -> Dict[str, Any]:
  try:
    row = json.loads(path.read_text(encoding="utf-8"))
  except ValueError as e:
    raise ValueError(f"unreadable case file {path}: {e}") from e
  infinite = {"inf": math.inf, "-inf": -math.inf}
  return {k: (math.nan if v is None else infinite.get(v, v) if isinstance(v, str) and k != "case_id" else v)
          for k, v in row.items()}


def read_case(out_dir: PathLike, case_id: str) -> Optional[Dict[str, Any]]:
  """The stored row of a case, or None if it has not been written (not done yet)."""
  path = case_path(out_dir, case_id)
  return _load_case(path) if path.exists() else None


def column_order(rows: Iterable[Mapping[str, Any]]) -> List[str]:
  """Stable CSV columns: `case_id` first, then every other key in sorted order."""
  keys = set()
  for row in rows:
    keys.update(str(k) for k in row)
  return (["case_id"] if "case_id" in keys else []) + sorted(keys - {"case_id"})


def _cell(value: Any) -> str:
  value = _plain(value)
  if value is None:
    return "nan"
  if isinstance(value, float):
    return repr(value)  # Shortest text that reads back to the same float.
  return str(value)


def write_csv_rows(path: PathLike, rows: Sequence[Mapping[str, Any]],
                   columns: Optional[Sequence[str]] = None) -> Path:
  """Writes rows as CSV, atomically, in the given row order.

  Columns are `columns` or `column_order(rows)`; a missing value is written as `nan`,
  floats with `repr` (exact round trip), lines end in `\\n` on every platform.
  """
  columns = list(columns) if columns is not None else column_order(rows)
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(columns)
  for row in rows:
    writer.writerow([_cell(row.get(c)) for c in columns])
  return atomic_write(path, buf.getvalue())


def collect_rows(out_dir: PathLike, *, csv_name: str = RESULTS_CSV,
                 columns: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
  """Merges `out_dir/cases/*.json` into `out_dir/<csv_name>`, sorted by case id.

  The result depends only on the set of case files, never on the order in which the
  cases ran or on how often the run was interrupted. Temporary files (names starting
  with '.') are ignored.

  Returns:
    The rows, in natural case-id order (NaN for null values).
  """
  folder = Path(out_dir) / CASES_DIR
  paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
  rows = [_load_case(p) for p in paths if not p.name.startswith(".")]
  rows.sort(key=lambda r: _natural_key(str(r["case_id"])))
  ids = [r["case_id"] for r in rows]
  if len(set(ids)) != len(ids):
    raise ValueError(f"duplicate case ids in {folder}")
  write_csv_rows(Path(out_dir) / csv_name, rows, columns)
  return rows


# ------------------------------------------------------------------------- summaries


def summarise(rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str], *,
              ddof: int = 0) -> Dict[str, Stats]:
  """Per-metric mean and standard deviation over cases, ignoring NaN.

  For metric `m` with finite-or-infinite values `x_1..x_n` (NaN, empty and missing
  values are dropped and counted in `n_nan`): `mean = sum x_i / n`,
  `std = sqrt(sum (x_i - mean)^2 / (n - ddof))`. With no value, mean and std are NaN.

  Returns:
    `{metric: {"mean", "std", "n", "n_nan"}}` in the order of `metric_names`.
  """
  summary = {}
  for name in metric_names:
    values = []
    for row in rows:
      v = row.get(name, math.nan)
      values.append(math.nan if v is None or v == "" else float(v))
    x = np.asarray(values, dtype=np.float64)
    ok = x[~np.isnan(x)]
    n = int(ok.size)
    mean = float(ok.mean()) if n else math.nan
    std = float(ok.std(ddof=ddof)) if n > ddof else math.nan
    summary[name] = {"mean": mean, "std": std, "n": n, "n_nan": int(x.size - n)}
  return summary


def _pm(stats: Mapping[str, float], scale: float, decimals: int) -> str:
  if stats["n"] == 0:
    return "-"
  return (f"{stats['mean'] * scale:.{decimals}f} ± "
          f"{stats['std'] * scale:.{decimals}f}")


def _wrap(table: List[str], title: Optional[str], notes: Sequence[str]) -> str:
  head = [f"### {title}", ""] if title else []
  tail = [""] + [f"- {n}" for n in notes] if notes else []
  return "\n".join(head + table + tail) + "\n"


def summary_markdown(summary: Mapping[str, Stats], title: Optional[str] = None,
                     notes: Union[str, Sequence[str]] = (), *, scale: float = 100.0,
                     decimals: int = 1) -> str:
  """A Markdown table of one method: one row per metric, `mean ± std` in %.

  Columns: metric | mean ± std (%) | n, plus `NaN` (cases without a value) if any.
  Values are multiplied by `scale` (fractions -> %) and shown with `decimals` decimals.
  `notes` (a string or lines) follow the table as a bullet list.
  """
  notes = [notes] if isinstance(notes, str) else list(notes)
  with_nan = any(s["n_nan"] for s in summary.values())
  table = ["| metric | mean ± std (%) | n |" + (" NaN |" if with_nan else ""),
           "|---|---|---|" + ("---|" if with_nan else "")]
  for name, s in summary.items():
    table.append(f"| {name} | {_pm(s, scale, decimals)} | {s['n']} |"
                 + (f" {s['n_nan']} |" if with_nan else ""))
  return _wrap(table, title, notes)


def comparison_markdown(summaries: Mapping[str, Mapping[str, Stats]],
                        title: Optional[str] = None,
                        notes: Union[str, Sequence[str]] = (), *,
                        scale: float = 100.0, decimals: int = 1) -> str:
  """The paper's table layout: metrics as rows, one `mean ± std` column per method.

  Args:
    summaries: `{method: summarise(...)}`; metrics are taken in first-seen order.
    title, notes, scale, decimals: as in `summary_markdown`.
  """
  notes = [notes] if isinstance(notes, str) else list(notes)
  metrics: List[str] = []
  for s in summaries.values():
    metrics += [m for m in s if m not in metrics]
  methods = list(summaries)
  table = ["| metric (%) | " + " | ".join(methods) + " |",
           "|---|" + "---|" * len(methods)]
  for m in metrics:
    cells = [_pm(summaries[k][m], scale, decimals) if m in summaries[k] else "-"
             for k in methods]
    table.append(f"| {m} | " + " | ".join(cells) + " |")
  return _wrap(table, title, notes)


# -------------------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  s = int(round(seconds))
  return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
  """A text progress bar on stderr: images done / total, images per minute, time left.

  On a terminal the bar is redrawn in place (carriage return); otherwise (CI logs, a
  file, a StringIO) each update prints one full line. Images counted in `initial`
  (already done by an earlier, interrupted run) do not count towards the rate.

  Usage::

    with ProgressBar(len(cases), label="PH2") as bar:
      for case in cases:
        ...
        bar.update(note=case_id)
  """

  def __init__(self, total: int, label: str = "", *, stream: Optional[TextIO] = None,
               width: int = 24, initial: int = 0,
               clock: Callable[[], float] = time.monotonic):
    self.total = int(total)
    self.label = label
    self.stream = sys.stderr if stream is None else stream
    self.width = int(width)
    self.done = int(initial)
    self._initial = int(initial)
    self._clock = clock
    self._start = clock()
    self._last_len = 0
    self._closed = False
    try:
      self._tty = bool(self.stream.isatty())
    except (AttributeError, ValueError):
      self._tty = False

  def line(self, note: str = "") -> str:
    """The current status line (no line ending)."""
    frac = self.done / self.total if self.total > 0 else 1.0
    filled = int(round(frac * self.width))
    elapsed = max(self._clock() - self._start, 1e-9)
    counted = self.done - self._initial
    per_min = 60.0 * counted / elapsed if counted > 0 else math.nan
    left = (self.total - self.done) * 60.0 / per_min if counted > 0 else math.nan
    rate = f"{per_min:.1f}" if math.isfinite(per_min) else "?"
    text = (f"{self.label + ' ' if self.label else ''}{self.done}/{self.total} "
            f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * frac:3.0f}% | "
            f"{rate} img/min | left {_duration(left)}")
    return f"{text} | {note}" if note else text

  def update(self, n: int = 1, note: str = "") -> None:
    """Counts `n` more images done and prints the status."""
    self.done += int(n)
    text = self.line(note)
    if self._tty:
      pad = " " * max(self._last_len - len(text), 0)
      self.stream.write("\r" + text + pad)
      self._last_len = len(text)
    else:
      self.stream.write(text + "\n")
    self.stream.flush()

  def close(self) -> None:
    """Ends the in-place line on a terminal; safe to call twice."""
    if not self._closed and self._tty and self._last_len:
      self.stream.write("\n")
      self.stream.flush()
    self._closed = True

  def __enter__(self) -> "ProgressBar":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
