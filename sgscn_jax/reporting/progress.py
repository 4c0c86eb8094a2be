"""A text progress bar for long runs.

`ProgressBar` prints images done, images per minute and time left to stderr.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Optional, TextIO


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
