"""How a data set of 2D images is run: every setting but the method and its config.

`RunOptions` is recorded in run.json; its `OUTPUT_ONLY` and `RESCORED` fields say how a
resume treats each setting (`running.folder.check_settings`): the others, like the method's
config, are result settings, and a resume with other values is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

from sgscn_jax.evaluation.objects import ObjectConfig


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How a data set is run (everything but the method's own `Config`).

  Attributes:
    out_dir: folder for every output; reruns with the same folder resume.
    size: working size: None (native), an int (long side) or `(h, w)`.
    bucket_multiple: bucket shapes are multiples of this (1: exact working shapes).
    batch_size: images per `method` call (same bucket shape).
    seed: base seed; each case's key is `fold_in(key(seed), crc32(case_id))`.
    overlay_rule: the selection rule drawn in overlays when a mask exists.
    montage_cases: how many cases (the first, by id) the montage shows.
    method_name: recorded in every row and the summary.
    standardise: the method sees each working image standardised (`decode.standardise`: zero
      mean, unit variance per channel) instead of its [0, 1] intensities; overlays and
      scores are unchanged. Off by default, as in the paper.
    objects: the mask-free object step's settings (`evaluation.objects.ObjectConfig`: the
      data set's kind of object), or None for no object: with it each case gets
      `objects/<id>.png`, the object's outline on its overlay (magenta) and the `object`
      protocol's scores.
    hair_removal: every image is read through `data.hair.remove_hair` (DullRazor-style dark
      line removal and inpainting, at the image's own resolution) before anything else:
      the method, the object step, overlays and montage all see the cleaned image. Off by
      default (measured: docs/OBJECTS.md).
    seeds_per_image: E > 1 runs each image with E keys (`seed_key`) in the same batch and
      fuses the E label maps (`evaluation.consensus`): the consensus is the case's label
      map, and `uncertainty/<id>.png` its per-pixel agreement (255 = all seeds agree). Each
      seed's own map is kept in `seed_labels/<id>_seed<e>.png`. With objects on, the
      case's object is the vote of the E seeds' objects (`consensus.vote_objects`; an even
      E's ties go to the consensus map's object), and `object_share/<id>.png` the share of
      seeds whose object holds each pixel (255 = all). A vote of methods
      (`baselines.method_vote`) is voted the same way, from its members' label maps
      (`member_labels/<id>_<member>.png`; ties: the first member's object).
    gt_clipped: None (the default) or a dilation radius r: every case is also scored under
      the INFLATED diagnostic protocol `gt_clipped` (the paper cluster multiplied by the
      ground truth dilated by a (2r+1)^2 square, S3-Net's published protocol).
    despeckle: the method's working image is de-speckled first (`data.speckle`: "none",
      "median", "nlm", "bilateral"); objects, overlays and scores see the image as read.
    overwrite: a folder whose finished cases were made with other result settings is
      recomputed (their records removed first) instead of refused (`running.folder`).
    fit_dir: a data-set method (`registry.Method.fit`, e.g. CUTS) is fitted on the images of
      this folder (read as `--dataset folder`, at the run's working size) instead of the
      run's own images; ignored by the other methods. The state is kept in
      `fitted/` (`running.fitting`) and reused on resume.
    fitted_from: a data-set method is not fitted: the state of this run folder's
      `fitted/` is used (`fitting.load_fitted`; refused with one line when it was fitted
      with other fit settings), and a copy kept in this run's `fitted/`.
  """
  out_dir: str
  size: Any = None
  bucket_multiple: int = 16
  batch_size: int = 4
  seed: int = 0
  overlay_rule: str = "largest_overlap"
  montage_cases: int = 6
  method_name: str = "sgscn"
  standardise: bool = False
  objects: Optional[ObjectConfig] = None
  hair_removal: bool = False
  seeds_per_image: int = 1
  gt_clipped: Optional[int] = None
  overwrite: bool = False
  despeckle: str = "none"
  fit_dir: Optional[str] = None
  fitted_from: Optional[str] = None

  # How a resume treats each option (`running.folder.check_settings`); the rest, like the
  # method's config, are result settings: a resume with other values is refused.
  OUTPUT_ONLY: ClassVar[tuple] = ("out_dir", "overlay_rule", "montage_cases", "batch_size",
                                  "overwrite")
  RESCORED: ClassVar[tuple] = ("objects", "gt_clipped")   # redone from saved label maps
