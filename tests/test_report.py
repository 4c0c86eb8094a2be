"""Tests of the report helpers: overlays, montages, atomic files, case rows, summaries."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest

from sgscn_jax import report


def _boundary_by_hand(mask: np.ndarray) -> np.ndarray:
  """Mask pixels with an 8-neighbour outside the mask or outside the image."""
  h, w = mask.shape
  out = np.zeros_like(mask)
  for y in range(h):
    for x in range(w):
      if not mask[y, x]:
        continue
      for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
          yy, xx = y + dy, x + dx
          if not (0 <= yy < h and 0 <= xx < w) or not mask[yy, xx]:
            out[y, x] = True
  return out


def test_outline_of_a_square_is_its_ring():
  mask = np.zeros((7, 7), bool)
  mask[1:6, 1:6] = True
  ring = report.outline(mask)
  assert ring.sum() == 16
  assert not ring[2:5, 2:5].any()
  np.testing.assert_array_equal(ring, _boundary_by_hand(mask))
  thick = report.outline(mask, width=2)
  assert thick.sum() == 24 and not thick[3, 3]


def test_outline_closes_along_the_image_edge():
  mask = np.zeros((6, 6), bool)
  mask[:3, :] = True
  np.testing.assert_array_equal(report.outline(mask), _boundary_by_hand(mask))
  assert report.outline(mask)[0].all()


def test_overlay_puts_colours_exactly_on_boundaries():
  rng = np.random.default_rng(0)
  pred = rng.random((20, 24)) < 0.5
  pred[:, :6] = False
  gt = np.zeros((20, 24), bool)
  gt[4:15, 3:18] = True
  image = np.full((20, 24, 1), 0.5, np.float32)
  out = report.overlay(image, pred, gt)
  assert out.shape == (20, 24, 3) and out.dtype == np.uint8
  on_pred = _boundary_by_hand(pred)
  on_gt = _boundary_by_hand(gt) & ~on_pred
  np.testing.assert_array_equal(out[on_pred], np.tile(report.PRED_COLOUR, (on_pred.sum(), 1)))
  np.testing.assert_array_equal(out[on_gt], np.tile(report.GT_COLOUR, (on_gt.sum(), 1)))
  rest = ~(on_pred | on_gt)
  assert np.all(out[rest] == 128)


def test_overlay_keeps_colour_images_and_checks_shapes():
  image = np.random.default_rng(1).random((8, 9, 3)).astype(np.float32)
  out = report.overlay(image, None, None)
  np.testing.assert_array_equal(out, np.round(image * 255).astype(np.uint8))
  with pytest.raises(ValueError):
    report.overlay(image, np.zeros((8, 8), bool))
  with pytest.raises(ValueError):
    report.overlay(np.zeros((8, 9, 2)), None)


def test_label_colours_are_fixed_per_id():
  a = np.array([[0, 1, 2], [3, 4, -1]])
  b = np.array([[4, 4], [0, 9]])
  ca, cb = report.label_colours(a), report.label_colours(b)
  assert ca.shape == (2, 3, 3) and ca.dtype == np.uint8
  np.testing.assert_array_equal(ca[1, 1], cb[0, 0])  # Label 4 in both maps.
  np.testing.assert_array_equal(ca[0, 0], cb[1, 0])  # Label 0 in both maps.
  np.testing.assert_array_equal(ca[1, 2], [0, 0, 0])  # Negative label.
  colours = report.label_colours(np.arange(12)[None])[0]
  assert len({tuple(c) for c in colours}) == 12


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "sub" / "out.txt"
  report.atomic_write(path, "first")
  assert path.read_text() == "first"
  report.atomic_write(path, b"second \xe2\x9c\x93")
  assert path.read_bytes() == b"second \xe2\x9c\x93"
  assert os.listdir(path.parent) == ["out.txt"]
  with pytest.raises(TypeError):
    report.atomic_write(path, 123)  # type: ignore[arg-type]
  assert path.read_bytes() == b"second \xe2\x9c\x93"
  assert os.listdir(path.parent) == ["out.txt"]


def _rows():
  return [
      {"case_id": "c10", "dsc": 0.5, "jaccard": 1 / 3},
      {"jaccard": float("nan"), "case_id": "c2", "dsc": 0.9},
      {"case_id": "a/b", "dsc": np.float32(0.25), "jaccard": 0.1, "note": "x,y"},
      {"case_id": "c1", "dsc": 0.75, "jaccard": 0.6},
  ]


def test_collect_rows_is_independent_of_run_order_and_interruptions(tmp_path):
  first, second = tmp_path / "a", tmp_path / "b"
  for row in _rows():
    report.write_case(first, row)
  # The second run: other order, a stray temporary file from an interrupted write,
  # and one case written twice (a rerun of the same case).
  (second / report.CASES_DIR).mkdir(parents=True)
  (second / report.CASES_DIR / ".c3.json.abc.tmp").write_text("{partial")
  for row in reversed(_rows()):
    report.write_case(second, row)
  report.write_case(second, _rows()[0])
  rows = report.collect_rows(first)
  report.collect_rows(second)
  assert [r["case_id"] for r in rows] == ["a/b", "c1", "c2", "c10"]
  assert math.isnan(rows[2]["jaccard"])
  csv_a = (first / report.RESULTS_CSV).read_text()
  assert csv_a == (second / report.RESULTS_CSV).read_text()
  lines = csv_a.splitlines()
  assert lines[0] == "case_id,dsc,jaccard,note"
  assert lines[1] == 'a/b,0.25,0.1,"x,y"'
  assert lines[3] == "c2,0.9,nan,nan"  # Missing and NaN are both written `nan`.


def test_case_files_round_trip(tmp_path):
  path = report.write_case(tmp_path, {"case_id": "a/b", "dsc": float("nan"), "n": 3})
  assert path.parent.name == report.CASES_DIR and "/" not in path.name[:-5]
  assert json.loads(path.read_text())["dsc"] is None  # Plain JSON, no NaN token.
  row = report.read_case(tmp_path, "a/b")
  assert row["case_id"] == "a/b" and row["n"] == 3 and math.isnan(row["dsc"])
  assert report.read_case(tmp_path, "missing") is None
  assert report.case_path(tmp_path, "a/b") != report.case_path(tmp_path, "a_b")
  with pytest.raises(KeyError):
    report.write_case(tmp_path, {"dsc": 1.0})


def test_write_csv_rows_column_order_is_stable(tmp_path):
  report.write_csv_rows(tmp_path / "a.csv", [{"z": 1, "case_id": "k", "b": 2.5}])
  report.write_csv_rows(tmp_path / "b.csv", [{"b": 2.5, "z": 1, "case_id": "k"}])
  assert (tmp_path / "a.csv").read_text() == "case_id,b,z\nk,2.5,1\n"
  assert (tmp_path / "b.csv").read_text() == "case_id,b,z\nk,2.5,1\n"
  report.write_csv_rows(tmp_path / "c.csv", [{"b": 1}], columns=["b", "case_id"])
  assert (tmp_path / "c.csv").read_text() == "b,case_id\n1,nan\n"


def test_summarise_on_hand_built_rows():
  rows = [{"dsc": 0.7, "xor": 0.5}, {"dsc": 0.9, "xor": ""}, {"dsc": float("nan")},
          {"dsc": "0.8", "xor": 0.3}]
  s = report.summarise(rows, ["dsc", "xor", "hm"])
  assert list(s) == ["dsc", "xor", "hm"]
  assert s["dsc"]["n"] == 3 and s["dsc"]["n_nan"] == 1
  assert s["dsc"]["mean"] == pytest.approx(0.8)
  assert s["dsc"]["std"] == pytest.approx(np.sqrt(0.02 / 3))
  assert s["xor"]["n"] == 2 and s["xor"]["n_nan"] == 2
  assert s["xor"]["mean"] == pytest.approx(0.4) and s["xor"]["std"] == pytest.approx(0.1)
  assert s["hm"]["n"] == 0 and math.isnan(s["hm"]["mean"])
  s1 = report.summarise(rows, ["dsc"], ddof=1)
  assert s1["dsc"]["std"] == pytest.approx(0.1)


def test_summary_markdown_layout():
  s = report.summarise([{"DSC": 0.7, "XOR": 0.3}, {"DSC": 0.9, "XOR": float("nan")}],
                       ["DSC", "XOR"])
  text = report.summary_markdown(s, title="PH2, SGSCN", notes="largest-overlap cluster")
  lines = text.splitlines()
  assert lines[0] == "### PH2, SGSCN"
  assert lines[2] == "| metric | mean ± std (%) | n | NaN |"
  assert "| DSC | 80.0 ± 10.0 | 2 | 0 |" in lines
  assert "| XOR | 30.0 ± 0.0 | 1 | 1 |" in lines
  assert lines[-1] == "- largest-overlap cluster"
  table = report.comparison_markdown({"k-means": s, "SGSCN": s})
  assert table.splitlines()[0] == "| metric (%) | k-means | SGSCN |"
  assert "| DSC | 80.0 ± 10.0 | 80.0 ± 10.0 |" in table


def test_montage_shape():
  image = np.random.default_rng(0).random((16, 20, 3))
  mask = np.zeros((16, 20), bool)
  mask[4:10, 5:12] = True
  labels = np.arange(320).reshape(16, 20) % 3
  line = report._text_height()
  out = report.montage([("a", image, mask, mask, labels), ("b", image, mask, None, None)],
                       gap=4)
  assert out.dtype == np.uint8
  assert out.shape == (4 + line + 2 * (line + 16 + 4), 2 * 4 + 4 * 20 + 3 * 4, 3)
  small = report.montage([("", image[..., :1], None, mask, None)], gap=2,
                         panel_height=32)
  assert small.shape == (2 + line + line + 32 + 2, 2 * 2 + 3 * 40 + 2 * 2, 3)
  # The ground-truth panel of the first row is the mask in white.
  y0, x0 = 4 + 2 * line, 4 + 20 + 4
  np.testing.assert_array_equal(out[y0:y0 + 16, x0:x0 + 20, 0], mask * 255)


class _FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_progress_bar_prints_a_line_per_update_off_a_terminal():
  stream, clock = io.StringIO(), _FakeClock()
  bar = report.ProgressBar(4, "PH2", stream=stream, width=8, clock=clock)
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
  with report.ProgressBar(3, stream=stream, clock=clock, initial=1) as bar:
    clock.now += 60.0
    bar.update()
    assert "\n" not in stream.getvalue()
  text = stream.getvalue()
  assert text.startswith("\r2/3 ") and text.endswith("\n")
  assert "1.0 img/min | left 0:01:00" in text


def test_montage_refuses_mismatched_panels_unless_resized():
  image = np.zeros((16, 20, 3))
  gt = np.zeros((32, 40), bool)
  with pytest.raises(ValueError):
    report.montage([("a", image, gt, None, None)])
  out = report.montage([("a", image, gt, None, None)], panel_height=16, gap=0)
  assert out.shape[1] == 3 * 20


def test_montage_outlines_are_drawn_at_panel_size():
  image = np.full((64, 64, 3), 0.5)
  mask = np.zeros((64, 64), bool)
  mask[16:48, 16:48] = True
  out = report.montage([("", image, None, mask, None)], panel_height=16, gap=0,
                       outlines=True)
  y0 = 2 * report._text_height()
  panel = out[y0:y0 + 16, :16]
  yellow = np.all(panel == report.PRED_COLOUR, axis=-1)
  np.testing.assert_array_equal(yellow, report.outline(report._fit_mask(mask, 16)))
  assert yellow.sum() == 28  # The ring of the 8 x 8 square the mask becomes.
