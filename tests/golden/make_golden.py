"""Writes the golden files of `tests/test_golden.py` (run once, before a refactor).

    python tests/golden/make_golden.py

Each case is a small fixed run (tiny image or volume, few iterations) whose label map and
loss history must not change under a change that claims to change no result. The files
are `<case>.npz` with `labels`, `total`, `n_labels` and one `term_<name>` per loss term,
plus `runner.json` (the scores and rows of a two-image data-set run) and `machine.json`
(the CPU and library versions they were made with: the test is bit-for-bit there).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import golden_cases  # noqa: E402


def main():
  for name, result in golden_cases.run_all().items():
    arrays = {"labels": np.asarray(result.labels), "total": np.asarray(result.history.total),
              "n_labels": np.asarray(result.history.n_labels)}
    arrays.update({f"term_{k}": np.asarray(v) for k, v in result.history.terms.items()})
    np.savez_compressed(HERE / f"{name}.npz", **arrays)
    print(name, arrays["labels"].shape, int(np.max(arrays["labels"])) + 1, "labels")
  rows = golden_cases.runner_rows()
  (HERE / "runner.json").write_text(json.dumps(rows, sort_keys=True, separators=(",", ":")) + "\n")
  (HERE / "machine.json").write_text(json.dumps(golden_cases.machine(), indent=1) + "\n")


if __name__ == "__main__":
  main()
