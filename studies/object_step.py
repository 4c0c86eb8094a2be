r"""The object step measured: DSC of each protocol for registered methods or saved runs.

  python -m studies.object_step ph2 ../shared/data/PH2 --methods otsu,otsu_blue,chan_vese,kmeans:2
  python -m studies.object_step lung_ct ../shared/data/lung_ct --runs runs/tables_lung/sgscn/seed0

Methods run at the runners' working size (256 px on the long side, buckets of 16) with key
0; saved runs are read from their `labels/`. Each label map goes through the object step
with the data set's prior (`data.datasets.object_prior`), and every protocol is scored at
the mask's resolution (`evaluation.protocols`). Prints one line per method or run:
mean DSC per protocol, seconds per image, seconds of the object step per image. Results
quoted in docs/OBJECTS.md, under object step versions 1 to 3.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.data import resize
from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation import metrics, objects, protocols, regions
from sgscn_jax.running.inputs import without_hair


def union_bounds(labels: np.ndarray, mask: np.ndarray, valid=None) -> dict:
  """Oracle ceilings of any object step that unites regions of `labels` (they READ THE MASK,
  a diagnostic, never a protocol): the union of the clusters, and of the connected pieces of
  each cluster, that are mostly (> 1/2 of their pixels) inside the mask. The union keeps
  no region a cluster-based rule could split, so DSC above these needs pixels the label map
  does not separate (post-processing such as hole filling can add a little)."""
  mask = np.asarray(mask, bool)
  labels = np.asarray(labels, np.int64)
  if valid is not None:
    labels = np.where(np.asarray(valid, bool), labels, -1)
  pieces, _ = regions.connected_pieces(labels)
  out = {}
  for name, parts in (("clusters", labels), ("pieces", pieces)):
    inside = parts >= 0
    count = np.bincount(parts[inside], minlength=1)
    hits = np.bincount(parts[inside], weights=mask[inside], minlength=1)
    union = inside & (2 * hits > count)[np.maximum(parts, 0)]
    out[name] = metrics.dice(union, mask, valid)
  return out


def label_maps_of_method(spec, cases, load):
  """`spec` a `registry.MethodSpec` (the method grammar: `kmeans:2`, `iic:k=4,steps=100`)."""
  method, config = spec.method, spec.config()
  for case in cases:
    record = load(case)
    shape = resize.bucket_shape(resize.working_shape(record.image.shape, 256), 16)
    seg = method.segment_one(jax.random.key(0), resize.resize_image(record.image, shape), config)
    yield record, resize.labels_to_shape(np.asarray(seg.labels), record.image.shape[:2])


def label_maps_of_run(run, cases, load):
  for case in cases:
    path = Path(run) / "labels" / f"{case.case_id}.png"
    if path.exists():
      yield load(case), np.asarray(iio.imread(path)).astype(np.int64)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dataset")
  parser.add_argument("data_dir")
  parser.add_argument("--methods", default="")
  parser.add_argument("--runs", nargs="*", default=[])
  parser.add_argument("--hair_removal", action="store_true")
  parser.add_argument("--pieces", action="store_true",
                      help="the object step decides per connected piece of a cluster")
  parser.add_argument("--rim_band", type=int, default=None,
                      help="ObjectConfig.rim_band (default: the config's; 0 = no rim step)")
  parser.add_argument("--channel", default=None,
                      help="ObjectConfig.channel (default: the config's, auto)")
  parser.add_argument("--bounds", action="store_true",
                      help="also the oracle ceilings of cluster unions (read the mask)")
  args = parser.parse_args()
  cases, load = list_dataset(args.dataset, args.data_dir)
  if args.hair_removal:
    load = without_hair(load)
  fields = dict(object_prior(args.dataset), pieces=args.pieces)
  fields.update({k: v for k, v in (("rim_band", args.rim_band), ("channel", args.channel))
                 if v is not None})
  config = objects.ObjectConfig(**fields)
  sources = [(str(m), label_maps_of_method(m, cases, load))
             for m in registry.parse_methods(args.methods)] if args.methods else []
  sources += [(r, label_maps_of_run(r, cases, load)) for r in args.runs]
  for name, maps in sources:
    scores = {key: [] for key in ("largest_overlap", "paper_fill", "object")}
    bounds = {"clusters": [], "pieces": []}
    start, object_seconds, n = time.perf_counter(), 0.0, 0
    for record, labels in maps:
      valid = record.extra.get("valid")
      t = time.perf_counter()
      found = objects.extract_object(labels, record.image, config, valid=valid)
      object_seconds += time.perf_counter() - t
      predictions = protocols.predictions(labels, record.mask, valid, found.mask)
      for key in scores:
        scores[key].append(metrics.dice(predictions[key], record.mask, valid))
      if args.bounds:
        for key, value in union_bounds(labels, record.mask, valid).items():
          bounds[key].append(value)
      n += 1
    cells = ", ".join(f"{protocols.PROTOCOL_NAMES[k]} {100 * np.mean(v):.1f}"
                      for k, v in scores.items())
    if args.bounds:
      cells += (f"; oracle ceilings (read the mask): best cluster union "
                f"{100 * np.mean(bounds['clusters']):.1f}, best piece union "
                f"{100 * np.mean(bounds['pieces']):.1f}")
    print(f"{args.dataset} {name}: {n} cases; DSC {cells}; "
          f"{(time.perf_counter() - start) / max(n, 1):.2f} s/image, object step "
          f"{object_seconds / max(n, 1):.3f} s/image", flush=True)


if __name__ == "__main__":
  main()
