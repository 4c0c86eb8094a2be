"""Tests of the text progress bar."""

from __future__ import annotations

import io

from sgscn_jax.reporting import progress


class _FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_progress_bar_prints_a_line_per_update_off_a_terminal():
  stream, clock = io.StringIO(), _FakeClock()
  bar = progress.ProgressBar(4, "PH2", stream=stream, width=8, clock=clock)
  for _ in range(2):
    clock.now += 30.0
    bar.update(note="IMD003")
  bar.close()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 2 and "\r" not in stream.getvalue()
  assert lines[0].startswith("PH2 1/4 [##......]  25%")
  assert lines[1] == "PH2 2/4 [####....]  50% | 2.0 img/min | left 0:01:00 | IMD003"


class _Terminal(io.StringIO):

  def isatty(self):
    return True


def test_progress_bar_redraws_in_place_on_a_terminal():
  stream, clock = _Terminal(), _FakeClock()
  with progress.ProgressBar(3, stream=stream, clock=clock, initial=1) as bar:
    clock.now += 60.0
    bar.update()
    assert "\n" not in stream.getvalue()
  text = stream.getvalue()
  assert text.startswith("\r2/3 ") and text.endswith("\n")
  assert "1.0 img/min | left 0:01:00" in text
