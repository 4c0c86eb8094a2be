"""The SGSCN paper's published figures (REFERENCE.md sections 1-2), by data set, method and k:
the rows a table shows beside our own numbers (`tables.table_markdown`).
"""

from __future__ import annotations

from typing import Dict, Optional


# SGSCN's Table 1 on all 200 PH2 images (REFERENCE.md section 1), in %, keyed by
# (method, k); k None: the paper does not say. "hm_published": the paper's HM, whose
# values above 100 % no bounded definition allows: never shown in our HM row.
PAPER_PH2: Dict[tuple, Dict[str, float]] = {
    ("kmeans", 3): {"dice": 71.3, "hm_published": 130.8, "xor": 41.3},
    ("kmeans", 4): {"dice": 67.7, "hm_published": 165.2, "xor": 44.9},
    ("deepcluster", None): {"dice": 79.6, "hm_published": 35.8, "xor": 31.3},
    ("iic", None): {"dice": 81.2, "hm_published": 35.3, "xor": 29.8},
    ("sgscn", None): {"dice": 83.4, "hm_published": 32.3, "xor": 28.2},
}
# The SGSCN paper's Table 2: SYSU-US liver tumours in ultrasound (100 images; DSC only). The
# project's ultrasound data set is another one (breast tumours, BUS_UC): same modality and
# task, not the same images.
PAPER_ULTRASOUND: Dict[tuple, Dict[str, float]] = {
    ("kmeans", 5): {"dice": 37.1},
    ("kmeans", 6): {"dice": 39.3},
    ("deepcluster", None): {"dice": 60.9},
    ("iic", None): {"dice": 58.3},
    ("sgscn", None): {"dice": 63.2},
}
PAPER_ROWS = (("dice", "DSC, paper (%, its whole data set)"), ("xor", "XOR, paper (%)"),
              ("hm_published", "HM as published, paper (%, definition unstated)"))
PAPER_FIGURES = {"ph2": PAPER_PH2, "ultrasound": PAPER_ULTRASOUND}


def paper_figures(dataset: str, method: str, k: Optional[int]) -> Dict[str, float]:
  """The SGSCN paper's numbers of a method on a data set's modality (PH2: Table 1;
  ultrasound: Table 2, on SYSU-US), k-means by k, other methods whatever k; or {}."""
  table = PAPER_FIGURES.get(dataset, {})
  if method == "kmeans":
    return dict(table.get(("kmeans", k), {}))
  return dict(table.get((method, None), {}))


def paper_ph2(method: str, k: Optional[int]) -> Dict[str, float]:
  """The paper's PH2 numbers of a method (k-means by k; other methods whatever k), or {}."""
  return paper_figures("ph2", method, k)
