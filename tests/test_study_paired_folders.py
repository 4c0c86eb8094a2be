"""studies.paired_folders: a column made of several folders (two halves of a split) pairs
with a column of one folder case by case."""

import json

import numpy as np
import pytest

from sgscn_jax.reporting import tables
from studies import paired_folders


def _folder(root, name, values):
  cases = root / name / "cases"
  cases.mkdir(parents=True)
  for case_id, dsc in values.items():
    (cases / f"{case_id}.json").write_text(json.dumps({"case_id": case_id, "object.dice": dsc}))


def test_a_column_of_two_halves_pairs_with_the_whole(tmp_path):
  whole = {"c1": 0.9, "c2": 0.8, "c3": 0.7, "c4": 0.6}
  _folder(tmp_path, "half_a_s0", {"c1": 0.95, "c3": 0.75})
  _folder(tmp_path, "half_b_s0", {"c2": 0.7, "c4": 0.6})
  _folder(tmp_path, "whole_s0", whole)
  split = paired_folders.column(f"split={tmp_path}/half_a_s{{s}},{tmp_path}/half_b_s{{s}}", [0])
  full = paired_folders.column(f"whole={tmp_path}/whole_s{{s}}", [0])
  assert sorted(r["case_id"] for r in split.rows[0]) == ["c1", "c2", "c3", "c4"]
  paired = tables.paired_difference(split, full, rule="object")
  d = np.array([0.05, -0.1, 0.05, 0.0]) * 100
  assert paired.mean == pytest.approx(d.mean()) and paired.n == 4
  assert (paired.wins, paired.losses) == (2, 1)
  assert paired_folders._mean_dsc(split, "object") == pytest.approx(75.0)


def test_a_folder_without_cases_is_named(tmp_path):
  with pytest.raises(SystemExit, match="holds no finished cases"):
    paired_folders.column(f"x={tmp_path}/missing_s{{s}}", [0])


def test_the_cases_that_carry_a_gap_are_listed_largest_first(tmp_path, capsys):
  b = {"c1": 0.9, "c2": 0.7, "c3": 0.7}
  for s, a in enumerate([{"c1": 0.0, "c2": 0.8, "c3": 0.7}, {"c1": 0.2, "c2": 0.8, "c3": 0.6}]):
    _folder(tmp_path, f"a_s{s}", a)
    _folder(tmp_path, f"b_s{s}", b)
  col_a = paired_folders.column(f"A={tmp_path}/a_s{{s}}", [0, 1])
  col_b = paired_folders.column(f"B={tmp_path}/b_s{{s}}", [0, 1])
  diffs = paired_folders.case_differences(col_a, col_b, "object")
  assert [d[0] for d in diffs] == ["c1", "c2", "c3"]
  assert diffs[0][1:] == pytest.approx((10.0, 90.0)) and diffs[2][1:] == pytest.approx((65.0, 70.0))
  paired_folders.print_cases(col_a, col_b, "object", 1)
  out = capsys.readouterr().out
  # the summed differences: -80 + 10 - 5 = -75; c1 alone carries -80 of it (107 %)
  assert "sum to -80.0 of -75.0 (107 %)" in out and "c1: A 10.0, B 90.0, -80.0" in out


def _objects(root, name, masks, gt):
  """A folder with objects/<case>.png and the rows' object DSC of each mask against gt."""
  import imageio.v3 as iio
  from sgscn_jax.evaluation import metrics
  (root / name / "objects").mkdir(parents=True)
  for case_id, mask in masks.items():
    iio.imwrite(root / name / "objects" / f"{case_id}.png", mask.astype(np.uint8) * 255)
  _folder(root, name, {c: metrics.dice(m, gt[c]) for c, m in masks.items()})


def test_the_vote_of_three_seeds_objects_is_the_per_pixel_majority(tmp_path):
  from types import SimpleNamespace
  gt = {"c1": np.zeros((8, 8), bool)}
  gt["c1"][2:6, 2:6] = True                     # a 4x4 square, 16 pixels
  seeds = [gt["c1"].copy() for _ in range(3)]
  seeds[0][:, :] = False                        # seed 0 lost the object
  seeds[1][6:, :] = True                        # seed 1 took two extra rows (16 pixels)
  # seed 2 found it exactly; the majority is the square: DSC 1, while the seeds' mean is
  # (0 + 2*16/48 + 1) / 3 = (0 + 2/3 + 1) / 3
  for s, mask in enumerate(seeds):
    _objects(tmp_path, f"a_s{s}", {"c1": mask}, gt)
  cases = [SimpleNamespace(case_id="c1")]
  load = lambda case: SimpleNamespace(mask=gt[case.case_id], extra={})  # noqa: E731
  voted, matched = paired_folders.voted_column("A", f"A={tmp_path}/a_s{{s}}", [0, 1, 2],
                                               cases, load)
  assert matched == 3
  assert voted.rows[0] == [{"case_id": "c1", "object.dice": 1.0}]
  single = paired_folders.column(f"A={tmp_path}/a_s{{s}}", [0, 1, 2])
  assert paired_folders._mean_dsc(single, "object") == pytest.approx(100 * (2 / 3 + 1) / 3)
  with pytest.raises(SystemExit, match="odd number of seeds"):
    paired_folders.voted_column("A", f"A={tmp_path}/a_s{{s}}", [0, 1], cases, load)
