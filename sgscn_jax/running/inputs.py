"""What the method sees of each image: the load (hair removal), the working image, the
fit images of a data-set method, and the refusal of a working size that cannot fit.

    case --(load; `without_hair` with --hair_removal)--> record (the image as read: objects,
         overlays and scores see it)
         --(check; resize to the bucket shape; de-speckle; standardise)--> working image
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

from sgscn_jax import registry
from sgscn_jax.core.loop import check_image
from sgscn_jax.data import decode, hair, resize, speckle
from sgscn_jax.data.datasets import Case, Record, list_dataset
from sgscn_jax.running import distributed
from sgscn_jax.running.options import RunOptions
from sgscn_jax.volume import memory


def without_hair(load: Callable[[Case], Record]) -> Callable[[Case], Record]:
  """`load` followed by `hair.remove_hair` on the image; the hair mask's share of the image
  is kept in `Record.extra["hair_fraction"]`."""
  def load_without_hair(case: Case) -> Record:
    record = load(case)
    found = hair.hair_mask(record.image)
    image = hair.remove_hair(record.image, mask=found).astype(np.float32)
    return record._replace(image=image, extra=dict(record.extra,
                                                   hair_fraction=float(found.mean())))
  return load_without_hair


def run_loader(load: Callable[[Case], Record], options: RunOptions) -> Callable[[Case], Record]:
  """The run's loader: `load`, through `without_hair` when `options.hair_removal`."""
  return without_hair(load) if options.hair_removal else load


def work_shape(image_shape: Sequence[int], options: RunOptions) -> Tuple[int, int]:
  """The bucket shape an image of `image_shape` is segmented at."""
  return resize.bucket_shape(resize.working_shape(image_shape, options.size),
                             options.bucket_multiple)


def working_image(record: Record, case: Case, options: RunOptions) -> np.ndarray:
  """The method's input: the image at its bucket shape, de-speckled and standardised as
  the options say."""
  check_image(record.image, name=f"{case.case_id} ({case.image_path})")
  work = resize.resize_image(record.image, work_shape(record.image.shape, options))
  if options.despeckle != "none":
    work = speckle.despeckle(work, options.despeckle)
  if options.standardise:
    work = decode.standardise(work)
  return work


def fit_images(cases: Sequence[Case], load: Callable[[Case], Record],
               options: RunOptions) -> Tuple[List[str], List[np.ndarray], list]:
  """(ids, working images, valid regions) a data-set method is fitted on: `cases` (every
  case of the run, done or not, read with the run's `load`), or the images of
  `options.fit_dir`. Each valid region is the record's `extra["valid"]` (a scan region, a
  field of view) at the working shape (nearest), or None."""
  if options.fit_dir is not None:
    cases, load = list_dataset("folder", options.fit_dir)
    load = run_loader(load, options)
  works, valids = [], []
  for c in cases:
    record = load(c)
    works.append(np.asarray(working_image(record, c, options), np.float32))
    valid = record.extra.get("valid")
    valids.append(None if valid is None else resize.labels_to_shape(
        np.asarray(valid, np.int32), works[-1].shape[:2]).astype(bool))
  return [c.case_id for c in cases], works, valids


SIZES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 64)


def check_memory(pending: Sequence[Case], method: registry.Method, config: Any,
                 options: RunOptions) -> None:
  """Refuses, before anything runs, a working size whose estimated peak memory for one
  image (`method.image_memory`, e.g. SGSCN's calibrated model: on CPU the images of a
  batch run one after the other, on accelerators they are chunked to free memory) is over
  `memory.SAFETY` x the memory available; the error names the sizes that would fit. A
  method without a memory model is not checked."""
  model = method.image_memory
  if model is None:
    return
  budget = int(memory.SAFETY * memory.available_bytes())
  estimate = lambda h, w: model((h, w), 3, config)
  channels = (f" with {config.n_channels} channels" if hasattr(config, "n_channels") else "")
  seen = set()
  for case in pending:
    native = distributed.native_shape(case)
    if native is None:
      continue
    work = resize.bucket_shape(resize.working_shape(native, options.size), options.bucket_multiple)
    if work in seen:
      continue
    seen.add(work)
    need = estimate(*work)
    if need <= budget:
      continue
    fits = []
    for size in SIZES:
      shape = resize.bucket_shape(resize.working_shape(native, size), options.bucket_multiple)
      if estimate(*shape) <= budget:
        fits.append(f"--size {size} ({shape[0]}x{shape[1]}, ~{estimate(*shape) / 1e9:.1f} GB)")
      if len(fits) == 2:
        break
    raise memory.MemoryBudgetError(
        f"{case.case_id} ({case.image_path}): refusing to start: working size "
        f"{work[0]}x{work[1]}{channels} needs about "
        f"{need / 1e9:.1f} GB, over the {budget / 1e9:.1f} GB memory budget. Sizes that "
        f"would fit: {'; '.join(fits) if fits else 'none of ' + str(SIZES)}")
