"""Tests of per-case files, the results CSV and summaries (and the atomic writes they use)."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from sgscn_jax.data import files
from sgscn_jax.reporting import summary
from sgscn_jax.running import results


def test_atomic_write_bytes_replaces_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "sub" / "out.txt"
  files.atomic_write_bytes(path, "first".encode("utf-8"))
  assert path.read_text() == "first"
  files.atomic_write_bytes(path, b"second \xe2\x9c\x93")
  assert path.read_bytes() == b"second \xe2\x9c\x93"
  assert os.listdir(path.parent) == ["out.txt"]
  with pytest.raises(TypeError):
    files.atomic_write_bytes(path, 123)  # type: ignore[arg-type]
  assert path.read_bytes() == b"second \xe2\x9c\x93"
  assert os.listdir(path.parent) == ["out.txt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_write_bytes_gives_the_usual_permissions(tmp_path):
  old = os.umask(0o027)  # The umask decides, as with open(): 0o666 & ~0o027.
  try:
    files.atomic_write_bytes(tmp_path / "a.txt", b"x")
  finally:
    os.umask(old)
  assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


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
    results.write_case(first, row)
  # The second run: other order, a stray temporary file from an interrupted write,
  # and one case written twice (a rerun of the same case).
  (second / results.CASES_DIR).mkdir(parents=True)
  (second / results.CASES_DIR / ".c3.json.abc.tmp").write_text("{partial")
  for row in reversed(_rows()):
    results.write_case(second, row)
  results.write_case(second, _rows()[0])
  rows = results.collect_rows(first)
  results.collect_rows(second)
  assert [r["case_id"] for r in rows] == ["a/b", "c1", "c2", "c10"]
  assert math.isnan(rows[2]["jaccard"])
  csv_a = (first / results.RESULTS_CSV).read_text()
  assert csv_a == (second / results.RESULTS_CSV).read_text()
  lines = csv_a.splitlines()
  assert lines[0] == "case_id,dsc,jaccard,note"
  assert lines[1] == 'a/b,0.25,0.1,"x,y"'
  assert lines[3] == "c2,0.9,nan,nan"  # Missing and NaN are both written `nan`.


def test_case_files_round_trip(tmp_path):
  path = results.write_case(tmp_path, {"case_id": "a/b", "dsc": float("nan"), "n": 3})
  assert path.parent.name == results.CASES_DIR and "/" not in path.name[:-5]
  assert json.loads(path.read_text())["dsc"] is None  # Plain JSON, no NaN token.
  row = results.read_case(tmp_path, "a/b")
  assert row["case_id"] == "a/b" and row["n"] == 3 and math.isnan(row["dsc"])
  assert results.read_case(tmp_path, "missing") is None
  assert results.case_path(tmp_path, "a/b") != results.case_path(tmp_path, "a_b")
  with pytest.raises(KeyError):
    results.write_case(tmp_path, {"dsc": 1.0})


def test_write_csv_rows_column_order_is_stable(tmp_path):
  results.write_csv_rows(tmp_path / "a.csv", [{"z": 1, "case_id": "k", "b": 2.5}])
  results.write_csv_rows(tmp_path / "b.csv", [{"b": 2.5, "z": 1, "case_id": "k"}])
  assert (tmp_path / "a.csv").read_text() == "case_id,b,z\nk,2.5,1\n"
  assert (tmp_path / "b.csv").read_text() == "case_id,b,z\nk,2.5,1\n"
  results.write_csv_rows(tmp_path / "c.csv", [{"b": 1}], columns=["b", "case_id"])
  assert (tmp_path / "c.csv").read_text() == "b,case_id\n1,nan\n"


def test_summarise_on_hand_built_rows():
  rows = [{"dsc": 0.7, "xor": 0.5}, {"dsc": 0.9, "xor": ""}, {"dsc": float("nan")},
          {"dsc": "0.8", "xor": 0.3}]
  s = results.summarise(rows, ["dsc", "xor", "hm"])
  assert list(s) == ["dsc", "xor", "hm"]
  assert s["dsc"]["n"] == 3 and s["dsc"]["n_nan"] == 1
  assert s["dsc"]["mean"] == pytest.approx(0.8)
  assert s["dsc"]["std"] == pytest.approx(np.sqrt(0.02 / 3))
  assert s["xor"]["n"] == 2 and s["xor"]["n_nan"] == 2
  assert s["xor"]["mean"] == pytest.approx(0.4) and s["xor"]["std"] == pytest.approx(0.1)
  assert s["hm"]["n"] == 0 and math.isnan(s["hm"]["mean"])
  s1 = results.summarise(rows, ["dsc"], ddof=1)
  assert s1["dsc"]["std"] == pytest.approx(0.1)


def test_summary_markdown_layout():
  s = results.summarise([{"DSC": 0.7, "XOR": 0.3}, {"DSC": 0.9, "XOR": float("nan")}],
                       ["DSC", "XOR"])
  text = summary.summary_markdown(s, title="PH2, SGSCN", notes="largest-overlap cluster")
  lines = text.splitlines()
  assert lines[0] == "### PH2, SGSCN"
  assert lines[2] == "| metric | mean ± std (%) | n | NaN |"
  assert "| DSC | 80.0 ± 10.0 | 2 | 0 |" in lines
  assert "| XOR | 30.0 ± 0.0 | 1 | 1 |" in lines
  assert lines[-1] == "- largest-overlap cluster"
