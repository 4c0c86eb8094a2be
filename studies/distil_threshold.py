r"""The student's threshold, chosen on one set of cases and reported on another
(docs/DISTIL.md, "The threshold"): a distil run writes its probability map
(`probability/<id>.png`, 0-255, at the image's resolution); the object at threshold t is
`p > t` cleaned as the runner cleans it (`running.scoring.labels_object`: largest piece,
holes filled), scored against the data set's masks (object DSC, %).

  python -m studies.distil_threshold ph2 ../shared/data/PH2 \
      --choose runs/distil/ph2/halves/fitA_segA_s0 --report runs/distil/ph2/halves/fitA_segB_s0

prints, for each threshold of --thresholds, the mean DSC on the --choose folder's cases
(development: chosen with their masks) and on the --report folder's cases, then the
threshold that is best on --choose and its figure on --report (held out). The object here
is thresholded at the image's resolution (the probability map upsampled bilinearly), where
the runner's is the working-size object upsampled to the nearest pixel: the two differ by
about 0.1 DSC at t = 0.5.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Sequence

import imageio.v3 as iio
import numpy as np

from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import scoring


def dsc_by_threshold(folder: str, cases, load, prior: ObjectConfig,
                     thresholds: Sequence[float]) -> Dict[float, List[float]]:
  """Per threshold, the object DSC of every case of `cases` with a probability map in
  `folder` (cases without one are skipped)."""
  out: Dict[float, List[float]] = {t: [] for t in thresholds}
  for case in cases:
    path = Path(folder) / "probability" / f"{case.case_id}.png"
    if not path.exists():
      continue
    record = load(case)
    p = np.asarray(iio.imread(path), np.float32) / 255.0
    truth = np.asarray(record.mask) > 0
    valid = record.extra.get("valid")
    for t in thresholds:
      mask = scoring.labels_object((p > t).astype(np.int32), record, prior).mask
      if valid is not None:
        mask, gt = mask[valid], truth[valid]
      else:
        gt = truth
      out[t].append(200.0 * (mask & gt).sum() / max(mask.sum() + gt.sum(), 1))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("dataset")
  parser.add_argument("data_dir")
  parser.add_argument("--mask_pattern", default="{stem}.*")
  parser.add_argument("--choose", required=True, help="run folders (comma-separated)")
  parser.add_argument("--report", required=True, help="run folders (comma-separated)")
  parser.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6")
  args = parser.parse_args()
  cases, load = list_dataset(args.dataset, args.data_dir, mask_pattern=args.mask_pattern)
  prior = ObjectConfig(**object_prior(args.dataset))
  thresholds = [float(t) for t in args.thresholds.split(",")]
  means = {}
  for role in ("choose", "report"):
    scores = {t: [] for t in thresholds}
    for folder in getattr(args, role).split(","):
      for t, v in dsc_by_threshold(folder, cases, load, prior, thresholds).items():
        scores[t] += v
    means[role] = {t: float(np.mean(v)) for t, v in scores.items()}
    n = len(scores[thresholds[0]])
    print(f"{role} ({n} cases): " + ", ".join(f"t={t:g} {m:.1f}"
                                              for t, m in means[role].items()))
  best = max(thresholds, key=lambda t: means["choose"][t])
  print(f"best on --choose: t={best:g} ({means['choose'][best]:.1f}; t=0.5 "
        f"{means['choose'].get(0.5, float('nan')):.1f}); on --report: {means['report'][best]:.1f} "
        f"(t=0.5 {means['report'].get(0.5, float('nan')):.1f})")


if __name__ == "__main__":
  main()
