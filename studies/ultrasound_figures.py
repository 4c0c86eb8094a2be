r"""Figures of docs/ULTRASOUND.md (issue 43): the scan region by eye, and the worst cases.

  python -m studies.ultrasound_figures region     # docs/figures/ultrasound_scan_region_*.png
  python -m studies.ultrasound_figures worst "runs/us43_{source}/sgscn/seed0" --title SGSCN

`region`: the synthetic scanner image (`data.synthetic_ultrasound`) and eight BUSI images
chosen to show each part (frame wedges, calipers, text, depth), each with its scan region:
frame dark red, marks yellow outline (calipers green, text orange), depth region blue.

`worst`: per source, the five cases of lowest object DSC in a run folder: the image with
the ground truth (cyan), the saved object (magenta; `--recompute`: found again from the
saved label maps with the current object step), the scan region's depth (blue tint).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage
from skimage.transform import resize

from sgscn_jax.data import image_io, scan_region
from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation import metrics, objects
from sgscn_jax.data.synthetic_ultrasound import scanner_image
from studies.ultrasound_rule import SOURCES

OUT = Path("docs/figures")
TILE = (192, 256)
BUSI_SHOWN = ["benign (216)", "benign (259)", "benign (232)", "benign (261)",
              "malignant (101)", "malignant (78)", "malignant (24)", "benign (188)"]


def _region_tile(image: np.ndarray) -> np.ndarray:
  region = scan_region.find_scan_region(image)
  g = scan_region.grey(image)
  depth = scan_region.depth_region(ndimage.gaussian_filter(g, 3), region.valid)
  a = np.repeat(g[..., None], 3, -1).astype(np.float64)
  a[region.frame] = (0.55, 0.0, 0.0)
  a[depth] = 0.6 * a[depth] + np.array([0.0, 0.0, 0.4])
  a[ndimage.binary_dilation(region.marks) & ~region.marks] = (1.0, 1.0, 0.0)
  a[region.calipers] = (0.0, 1.0, 0.0)
  a[region.text] = (1.0, 0.5, 0.0)
  return resize(a, TILE, order=0)


def _grid(tiles, columns):
  tiles = list(tiles)
  while len(tiles) % columns:
    tiles.append(np.zeros_like(tiles[0]))
  rows = [np.concatenate(tiles[i:i + columns], 1) for i in range(0, len(tiles), columns)]
  return (np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)


def region_figures():
  scan = scanner_image(seed=0)
  plain = resize(np.repeat(scan_region.grey(scan.image)[..., None], 3, -1), TILE, order=0)
  iio.imwrite(OUT / "ultrasound_scan_region_synthetic.png",
              _grid([plain, _region_tile(scan.image)], 2))
  folder = Path(SOURCES["busi"][0]) / "images"
  tiles = [_region_tile(image_io.read_image(folder / f"{name}.png").image)
           for name in BUSI_SHOWN]
  iio.imwrite(OUT / "ultrasound_scan_region_busi.png", _grid(tiles, 4))


def _objects_now(folder: Path, cases, load):
  """{case: (object DSC, object mask, reason)} from the run's label maps with the current
  object step (the run's saved objects may be of an older version)."""
  config = objects.ObjectConfig(**object_prior("ultrasound"))
  out = {}
  for case in cases:
    path = folder / "labels" / f"{case.case_id}.png"
    if not path.exists():
      continue
    record = load(case)
    found = objects.extract_object(iio.imread(path).astype(np.int64), record.image, config,
                                   valid=record.extra["valid"])
    out[case.case_id] = (metrics.dice(found.mask, record.mask, record.extra["valid"]),
                         found.mask, found.reason)
  return out


def worst_figure(pattern: str, title: str, n: int = 5, sources=tuple(SOURCES),
                 recompute: bool = False):
  tiles = []
  for source in sources:
    data_dir, mask_pattern = SOURCES[source]
    folder = Path(pattern.format(source=source))
    cases, load = list_dataset("ultrasound", data_dir, mask_pattern=mask_pattern)
    by_id = {c.case_id: c for c in cases}
    if recompute:
      now = _objects_now(folder, cases, load)
      rows = [{"case_id": k, "object.dice": v[0], "object_reason": v[2]} for k, v in now.items()]
      print(f"{source}: object DSC {100 * np.mean([r['object.dice'] for r in rows]):.1f} "
            f"over {len(rows)} cases (object step v{objects.VERSION})")
    else:
      rows = list(csv.DictReader(open(folder / "results.csv")))
    rows.sort(key=lambda r: float(r["object.dice"]))
    for row in rows[:n]:
      record = load(by_id[row["case_id"]])
      obj = (now[row["case_id"]][1] if recompute
             else iio.imread(folder / "objects" / f"{row['case_id']}.png") > 0)
      g = record.image[..., 0]
      a = np.repeat(g[..., None], 3, -1).astype(np.float64)
      depth = scan_region.depth_region(ndimage.gaussian_filter(g, 3), record.extra["valid"])
      a[depth] = 0.7 * a[depth] + np.array([0.0, 0.0, 0.3])
      edge = lambda m: m & ~ndimage.binary_erosion(m, iterations=3)
      a[edge(obj)] = (1.0, 0.0, 1.0)
      a[edge(record.mask)] = (0.0, 1.0, 1.0)
      tiles.append(resize(a, TILE, order=0))
      print(f"{source} {row['case_id']}: object DSC {100 * float(row['object.dice']):.1f}; "
            f"{row.get('object_reason', '')[-160:]}")
  slug = title.lower().replace(" ", "_").replace("=", "")
  iio.imwrite(OUT / f"ultrasound_worst5_{slug}.png", _grid(tiles, n))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("what", choices=("region", "worst"))
  parser.add_argument("pattern", nargs="?", default="runs/us43_{source}/sgscn/seed0")
  parser.add_argument("--title", default="sgscn")
  parser.add_argument("--sources", default=",".join(SOURCES))
  parser.add_argument("--recompute", action="store_true",
                      help="objects from the label maps with the current object step")
  args = parser.parse_args()
  OUT.mkdir(parents=True, exist_ok=True)
  if args.what == "region":
    region_figures()
  else:
    worst_figure(args.pattern, args.title, sources=args.sources.split(","),
                 recompute=args.recompute)


if __name__ == "__main__":
  main()
