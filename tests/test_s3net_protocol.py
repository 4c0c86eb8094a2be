"""The INFLATED diagnostic protocol gt_clipped: never a default, labelled wherever it appears."""

import numpy as np

from sgscn_jax.evaluation import protocols
from sgscn_jax.reporting import summary as summary_md


def _case():
  gt = np.zeros((12, 12), bool)
  gt[3:8, 3:8] = True
  labels = np.zeros((12, 12), np.int64)
  labels[2:10, 2:11] = 1  # the lesion's cluster spills over: false positives around it
  return labels, gt


def test_dilated_ground_truth_is_a_square_dilation():
  _, gt = _case()
  d1 = protocols.dilated_ground_truth(gt, 1)
  assert d1.sum() == 7 * 7 and d1[2:9, 2:9].all()
  assert protocols.dilated_ground_truth(gt, 2).sum() == 9 * 9
  np.testing.assert_array_equal(protocols.dilated_ground_truth(gt, 0), gt)


def test_gt_clipped_is_never_scored_by_default():
  labels, gt = _case()
  assert not any(k.startswith("gt_clipped.") for k in protocols.score(labels, gt))
  assert "gt_clipped" not in protocols.PROTOCOLS and "gt_clipped" in protocols.ALL_PROTOCOLS


def test_gt_clipped_inflates_the_paper_score_by_deleting_false_positives():
  labels, gt = _case()
  row = protocols.score(labels, gt, gt_clipped_radius=1)
  paper = 2 * 25 / (72 + 25)
  clipped = 2 * 25 / (49 + 25)             # the prediction cut to the 7x7 dilated truth
  np.testing.assert_allclose(row["largest_overlap.dice"], paper)
  np.testing.assert_allclose(row["gt_clipped.dice"], clipped)
  assert row["gt_clipped.dice"] > row["largest_overlap.dice"]
  np.testing.assert_allclose(protocols.score(labels, gt, gt_clipped_radius=3)["gt_clipped.dice"],
                             paper)       # a 13x13 element clips nothing here


def test_gt_clipped_is_labelled_inflated_in_summaries():
  assert "INFLATED" in protocols.PROTOCOL_NAMES["gt_clipped"]
  assert "INFLATED" in protocols.PROTOCOL_TEXT["gt_clipped"]
  stats = {"mean": 0.9, "std": 0.0, "n": 1, "n_nan": 0}
  summary = {"method": "s3net", "metrics": {"largest_overlap.dice": stats,
                                            "gt_clipped.dice": stats},
             "finished": 1, "cases": 1, "failed": 0, "seed": 0,
             "iterations": {"mean": 1, "std": 0}, "n_labels": {"mean": 3, "std": 0},
             "seconds_per_case": {"mean": 1.0}}
  text = summary_md.run_markdown(summary)
  assert text.index("s3net, paper") < text.index("s3net, paper x dilated GT (INFLATED)")
