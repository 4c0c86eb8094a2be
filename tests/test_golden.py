"""Golden files: fixed small runs whose labels, loss histories and scores must not drift.

`tests/golden/*.npz` and `runner.json` were written by `tests/golden/make_golden.py` before
the package was reorganised (issue 12); a change that claims to change no result must
leave them equal. On the machine kind they were made on (`machine.json`: same jax, same
CPU vector extensions) equality is bit for bit; elsewhere XLA may reassociate floats
differently, so histories are compared to 1e-5 and label maps must agree on 99 % of pixels.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import golden_cases

HERE = Path(__file__).resolve().parent / "golden"
SAME_MACHINE = json.loads((HERE / "machine.json").read_text()) == golden_cases.machine()


def _compare(name, got, want):
  if SAME_MACHINE:
    np.testing.assert_array_equal(got, want, err_msg=name)
  elif np.issubdtype(np.asarray(want).dtype, np.floating):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
  else:
    assert np.mean(np.asarray(got) == np.asarray(want)) >= 0.99, name


@pytest.mark.parametrize("name", sorted(p.stem for p in HERE.glob("*.npz")))
def test_golden_run(name):
  # each test computes its own run only (not every run in the first test's setup), so the
  # runs are spread over the test workers instead of repeated by each
  want = np.load(HERE / f"{name}.npz")
  got = golden_cases.run(name)
  _compare(f"{name} labels", np.asarray(got.labels), want["labels"])
  _compare(f"{name} total", np.asarray(got.history.total), want["total"])
  _compare(f"{name} n_labels", np.asarray(got.history.n_labels), want["n_labels"])
  terms = {k[len("term_"):] for k in want.files if k.startswith("term_")}
  assert set(got.history.terms) == terms
  for term in terms:
    _compare(f"{name} {term}", np.asarray(got.history.terms[term]), want[f"term_{term}"])


def test_golden_files_cover_every_run():
  assert set(golden_cases.RUNS) == {p.stem for p in HERE.glob("*.npz")}


def test_golden_runner_rows_and_label_maps():
  want = json.loads((HERE / "runner.json").read_text())
  got = golden_cases.runner_rows()
  assert sorted(got["labels"]) == sorted(want["labels"])
  for case, labels in want["labels"].items():
    _compare(f"runner {case} labels", np.asarray(got["labels"][case]), np.asarray(labels))
  by_id = {r["case_id"]: r for r in got["rows"]}
  for row in want["rows"]:
    for key, value in row.items():
      if isinstance(value, float) and np.isnan(value):
        assert np.isnan(by_id[row["case_id"]][key]), key
      elif isinstance(value, float):
        assert by_id[row["case_id"]][key] == pytest.approx(value, rel=0 if SAME_MACHINE else 1e-4,
                                                           abs=0 if SAME_MACHINE else 1e-4), key
      else:
        assert by_id[row["case_id"]][key] == value, key
