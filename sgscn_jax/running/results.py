"""Per-case results that survive interruption, the results CSV, and summaries.

All on the host side (NumPy, no JAX); every file is written atomically with
`io.atomic_write_bytes`, so a reader (or a rerun after a crash) sees either the old file
or the new one, never a partial one.

* **Per-case results.** A run writes one small JSON file per finished case,
  `out_dir/cases/<case_id>.json` (`write_case`). A run that is killed loses at most the
  case it was working on; a rerun can skip the cases whose file exists (`read_case`).
  `collect_rows` then reads every case file, sorts the rows by case id (natural order:
  `c2` before `c10`) and writes `out_dir/results.csv` with a stable column order. The
  CSV is a pure function of the set of case files, so an interrupted-and-resumed run and
  an uninterrupted one give byte-identical summaries.
* **Summaries.** `summarise` gives mean, standard deviation and counts per metric,
  ignoring NaN; `summary_markdown` and `comparison_markdown` render them as Markdown
  tables in the paper's layout (metrics as rows, in %).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sgscn_jax.data import files

PathLike = Union[str, os.PathLike]
Stats = Dict[str, float]  # {"mean", "std", "n", "n_nan"}

CASES_DIR = "cases"
RESULTS_CSV = "results.csv"

# ------------------------------------------------------------------------ case files


def _natural_key(case_id: str) -> Tuple[List[Any], str]:
  """Sort key: digit runs compare as numbers (`c2 < c10`), ties by the raw string."""
  parts = re.split(r"(\d+)", case_id)
  return [int(p) if i % 2 else p for i, p in enumerate(parts)], case_id


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
  plain = {str(k): files.plain(v) for k, v in row.items()}
  plain["case_id"] = str(plain["case_id"])
  text = json.dumps(plain, sort_keys=True, indent=1, allow_nan=False) + "\n"
  path = case_path(out_dir, plain["case_id"])
  files.atomic_write_bytes(path, text.encode("utf-8"))
  return path


def _load_case(path: Path) -> Dict[str, Any]:
  try:
    row = json.loads(path.read_text(encoding="utf-8"))
  except ValueError as e:
    raise ValueError(f"unreadable case file {path}: {e}") from e
  infinite = {"inf": math.inf, "-inf": -math.inf}
  return {k: (math.nan if v is None
              else infinite.get(v, v) if isinstance(v, str) and k != "case_id" else v)
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
  value = files.plain(value)
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
  files.atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
  return Path(path)


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
  `std = sqrt(sum (x_i - mean)^2 / (n - ddof))`. With no value, mean and std are NaN;
  with an infinite value the mean is infinite and the std NaN (no warning).

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
    with np.errstate(invalid="ignore"):  # an infinite value (e.g. XOR/I with TP = 0): std NaN
      std = float(ok.std(ddof=ddof)) if n > ddof else math.nan
    summary[name] = {"mean": mean, "std": std, "n": n, "n_nan": int(x.size - n)}
  return summary
