"""The object step: one object (lesion, lungs, vessels) from a label map, without masks.

`extract_object` uses the labels, the image and a data-set prior (`ObjectConfig.profile`):
1. Frame: CNN label maps carry a one-pixel frame of clusters of their own (zero padding
   of 3x3 convolutions); `fill_frame` gives each frame pixel its nearest interior label
   before anything else; border contact is read on the ring just inside the frame.
2. Analysis size: labels (nearest) and image (bilinear, anti-aliased when shrinking) go to
   `analysis_size` on the long side, so radii are fractions of the image; the mask comes
   back to the input's shape by nearest neighbour.
3. Object channel: the candidate (each channel, PC1 of the colours) whose smoothed values
   are the most bimodal inside the central field (the inscribed ellipse, so that dark
   vignette corners do not decide it), and its Otsu threshold t there (`data.channels`).
4. Hierarchy: adjacent clusters merge by Ward's cost on the object channel down to 2
   regions (`region_hierarchy`); at the level with `regions` regions (default: every
   cluster) the regions whose mean is <= t form the dark side, the others the bright side.
5. Side: the polarity's (dark / bright), or by border contact (auto).
6. Profile rules: a few generic steps per kind of object ("mass", ultrasound tumours,
   searches every level of the hierarchy instead: `evaluation.masses`).
7. Rim (lesions): the object grows, pixel by pixel, into the pixels of its side of t within
   `rim_band` of it: a cluster that holds both the lesion's rim and skin is decided as a
   whole in step 4, and the rim it takes with it to the skin side comes back here.
Negative labels (and pixels outside `valid`) are ignored: no statistic, adjacency or
object. Rank-generic (2D, 3D) unless said.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from sgscn_jax.data import channels
from sgscn_jax.evaluation import masses
from sgscn_jax.evaluation.hierarchy import adjacency, dense_ids, merge_sequence, region_sums
from sgscn_jax.evaluation.regions import (analysis_shape, as_channels, border_ring,
                                          central_component, close_mask, components,
                                          connected_pieces, convex_hull, drop_border_components,
                                          drop_small_components, fill_frame, fill_holes, grow_into,
                                          largest_components, open_mask, resize_image,
                                          resize_nearest)

PROFILES = ("lesion", "lungs", "vessels", "mass")
# Bumped whenever a rule changes what `extract_object` returns; runs record it per case, and a
# resumed run redoes the objects of cases recorded under another version.
# 1: 9758585. 2 (a48194e): the lungs' body is the hull of the largest tissue component.
# 3 (1196bff): lesions grow into their side's pixels within `rim_band` (step 7).
# 4 (issue 43): the "mass" profile reads B-mode anatomy and refines its boundary (masses.py).
# 5 (issue 43): its scoring constants chosen again with elongation in the grid.
VERSION = 5
POLARITIES = ("auto", "dark", "bright")


@dataclasses.dataclass(frozen=True)
class ObjectConfig:
  """What the object is (a data-set prior, never per-case ground truth) and the rules' knobs.

  Attributes:
    profile: "lesion" | "lungs" | "vessels" | "mass" (see `extract_object`).
    polarity: "dark" | "bright" | "auto": which region of the level is the object.
    regions: the hierarchy level whose regions are sorted into the object's side and the
      other (None = every cluster, the finest level; 2 = the coarsest; clipped).
    channel_sigma: Gaussian smoothing (pixels at analysis size) of the object channel.
    analysis_size: long side of the analysis grid; None or 0 keeps the input's size.
      Not used by "vessels" (resampling breaks thin structures; it runs at input size).
    frame: border frame width in pixels at analysis size. It is filled at the input's
      resolution, `max(1, round(frame * input_long / analysis_long))` pixels wide (a label
      map is never finer than the grid its frame was drawn on); 0 = no frame.
    opening_radius: radius of the ball (disk in 2D) of the binary opening (lesion, lungs).
    centre_weight: lesion component score `area * exp(-centre_weight * d)`.
    border_penalty: lesion score factor for components touching the border.
    lung_count: lungs: how many of the largest interior components are kept.
    min_lung_fraction: lungs: smallest kept component, as a fraction of the image.
    min_body_fraction: lungs: the body (the hull of the other side's largest component)
      covers at least this fraction of the image, else this side is not the lungs' side.
    min_vessel_size: vessels: components (full connectivity) with fewer pixels, at input
      size, are dropped; 0 keeps all.
    channel: the object channel: "auto" (the most bimodal candidate in the central field)
      or a candidate's name ("0", "1", ... for the image's channels, "pc1"); e.g. "2", the
      blue channel, is the dermoscopy prior PH2's data set sets.
    rim_band: lesion: after the profile rule, the object grows into the pixels of its side
      of the object channel's threshold (<= t for dark, > t for bright) within this many
      pixels of it, at analysis size (`regions.grow_into`, opened with `opening_radius`,
      holes filled); 0 = off. Not used by lungs and vessels.
    pieces: decide per connected piece of a cluster (face connectivity, at analysis size)
      instead of per cluster: a cluster that holds both a lesion's rim and a stretch of
      skin is split where the two are not connected. The hierarchy then starts from the
      pieces.
  """
  profile: str = "lesion"
  polarity: str = "auto"
  regions: int | None = None
  analysis_size: int | None = 256
  channel_sigma: float = 2.0
  frame: int = 1
  opening_radius: int = 2
  centre_weight: float = 4.0
  border_penalty: float = 0.3
  lung_count: int = 2
  min_lung_fraction: float = 0.01
  min_body_fraction: float = 0.25
  min_vessel_size: int = 5
  pieces: bool = False
  channel: str = "auto"
  rim_band: int = 8

  def __post_init__(self):
    if self.profile not in PROFILES:
      raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
    if self.polarity not in POLARITIES:
      raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
    if (self.regions is not None and self.regions < 1) or self.frame < 0 or (
        self.opening_radius < 0) or self.rim_band < 0:
      raise ValueError("regions must be >= 1, frame, opening_radius and rim_band >= 0")
    if not (self.channel in ("auto", "pc1") or self.channel.isdigit()):
      raise ValueError(f"channel must be auto, pc1 or a channel index, got {self.channel!r}")


def config_tag(config: ObjectConfig) -> str:
  """The fields of `config` that differ from `ObjectConfig()`'s, as `name=value,...` in
  field order ("" for the defaults): recorded per case beside `VERSION`, so that a run
  resumed with other object settings redoes the objects instead of mixing two rules."""
  default = ObjectConfig()
  return ",".join(f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config)
                  if getattr(config, f.name) != getattr(default, f.name))


class ObjectResult(NamedTuple):
  """mask `[*spatial]` bool, regions `[*spatial]` int (the level used; -1 ignored), both at
  the input's shape; foreground_ids: input cluster ids of the chosen region; reason."""
  mask: np.ndarray
  regions: np.ndarray
  foreground_ids: np.ndarray
  reason: str


# ------------------------------------------------------------------------ the object step


def _side_order(config: ObjectConfig, contact: dict, size: dict) -> list:
  """The sides ("dark", "bright") in order of preference: the polarity's side; auto: for
  lesions the side of least border contact (ties: the smaller side), for lungs the most
  (the outside air's class, whose interior components are the lungs), for vessels dark."""
  if config.polarity in ("dark", "bright"):
    first = config.polarity
  elif config.profile == "vessels":
    first = "dark"
  else:
    least = min(contact, key=lambda k: (contact[k], size[k], k))
    first = least if config.profile == "lesion" else ("bright" if least == "dark" else "dark")
  return [first, "bright" if first == "dark" else "dark"]


def _lesion(side: np.ndarray, config: ObjectConfig) -> tuple[np.ndarray, str]:
  """Opening; holes filled in the components off the border only (a dark vignette ring
  would otherwise enclose, and fill, the whole image); best central component; holes."""
  score = dict(centre_weight=config.centre_weight, border_penalty=config.border_penalty)
  opened = open_mask(side, config.opening_radius)
  inner = drop_border_components(opened)
  obj = central_component(fill_holes(inner) | opened, **score)
  if obj.any():
    return fill_holes(obj), f"opened (r={config.opening_radius}), central component"
  return fill_holes(central_component(side, **score)), "opening left nothing: raw central component"


def _lungs(side: np.ndarray, config: ObjectConfig) -> tuple[np.ndarray, str]:
  """The lungs are the part of the side enclosed by the body. The body is the convex hull
  of the other side (soft tissue) after a closing: of its largest component (the scanner
  table and the objects around the body are separate components, and the hull of all of
  them would enclose the air between them and the body); if that hull is under
  `min_body_fraction` of the image (tissue so fragmented that no one piece is the body),
  of all its pieces of at least `min_lung_fraction`. In this encoding the chest wall is a
  speckled ring with gaps, which a hole-filling rule cannot close. The object is the side
  inside the hull, opened, its `lung_count` largest components (>= `min_lung_fraction`
  each), holes filled. 2D (the hull is per slice in 3D)."""
  radius = max(config.opening_radius, 1)
  closed = close_mask(~side, radius)
  body = largest_components(closed, 1)
  hull = convex_hull(body) if body.any() else body
  which = "the body's"
  if hull.mean() < config.min_body_fraction:
    comp, area = components(closed)
    tissue = closed & (area[comp] >= config.min_lung_fraction * side.size)  # no specks
    hull = convex_hull(tissue) if tissue.any() else tissue
    which = "the tissue pieces'"
  if hull.mean() < config.min_body_fraction:
    return np.zeros_like(side), f"no body (its hull is {hull.mean():.2f} of the image)"
  inside = open_mask(side & hull, radius)
  obj = fill_holes(largest_components(inside, config.lung_count, config.min_lung_fraction))
  parts = len(components(obj)[1]) - 1
  return obj, f"inside {which} convex hull, opened (r={radius}), {parts} component(s)"


def _vessels(side: np.ndarray, config: ObjectConfig) -> tuple[np.ndarray, str]:
  size = config.min_vessel_size
  return drop_small_components(side, size), f"the side as it is, components >= {size} px"


_RULES = {"lesion": _lesion, "lungs": _lungs, "vessels": _vessels}


def _mass(dense, ids, cluster_of, x, threshold, name, shape, valid,
          config: ObjectConfig) -> ObjectResult:
  """The "mass" profile (`masses.find_mass`) over every level of the hierarchy, or only
  the level with `config.regions` regions when it is set."""
  k = len(cluster_of)
  counts, sums = region_sums(dense, x[..., None], k)
  lookups = merge_sequence(counts, sums, adjacency(dense, k)) if k > 1 else [np.arange(k)]
  if config.regions is not None:
    lookups = [lookups[int(np.clip(k - config.regions, 0, len(lookups) - 1))]]
  polarity = "bright" if config.polarity == "bright" else "dark"
  found = masses.find_mass(dense, lookups, x, threshold, polarity=polarity,
                           opening_radius=config.opening_radius, ring_width=config.rim_band)
  regions_out = resize_nearest(np.append(lookups[0], -1)[dense], shape)
  if found is None:
    return ObjectResult(np.zeros(shape, bool), regions_out, ids[:0],
                        f"mass: no {polarity} compact region of the {k} clusters")
  mask = resize_nearest(found.mask, shape)
  if valid is not None:
    mask &= np.asarray(valid, bool)
  chosen = np.unique(ids[cluster_of[np.unique(dense[found.mask & (dense >= 0)])]])
  reason = (f"mass: the best {polarity} compact piece of the hierarchy's regions (channel "
            f"{name}, Otsu threshold {threshold:.3f}; level {found.level}, contrast "
            f"{found.contrast:.2f}, solidity {found.solidity:.2f}, area {found.area:.3f}"
            f"{', touches the border' if found.touches_border else ''}); "
            f"object {mask.mean():.3f} of the image")
  return ObjectResult(mask, regions_out, chosen, reason)


def extract_object(labels: np.ndarray, image: np.ndarray, config: ObjectConfig = ObjectConfig(),
                   *, valid: np.ndarray | None = None) -> ObjectResult:
  """The object of a label map: frame filled, analysis size, hierarchy level, profile rule.

  At the level with `config.regions` regions, one region is the object side
  (`_candidates`: polarity dark / bright = lowest / highest mean luminance, the mean over
  channels; auto = least border contact for lesion, most for lungs, dark for vessels). Then:
    lesion: opening, holes filled in the components off the border, the best
      `central_component`, fill holes; if empty, the raw side's central component; then
      the rim (`rim_band`): grown into the side's pixels of the object channel near it.
    lungs: opening (cuts thin paths to the outside air), drop components touching the
      border, keep the `lung_count` largest (>= min_lung_fraction each), fill holes. auto
      takes the region of most border contact (the outside air's class) and, if that
      leaves nothing (a body filling the field of view), the next region.
    vessels: the side as it is, at input size, minus components < min_vessel_size pixels.
      No opening, hole filling or central component: all three destroy thin structures.

  Args:
    labels: `[*spatial]` int cluster ids (negative = ignored).
    image: `[*spatial, C]` or `[*spatial]` float in [0, 1].
    config: the data-set prior and knobs.
    valid: optional `[*spatial]` bool; pixels outside take part in nothing and are never
      object (e.g. a retina's field of view).

  Returns:
    `ObjectResult`; fewer than 2 regions give an empty mask.

  Examples:
    A dark lesion (cluster 1) on skin that the clustering split in two (clusters 0 and 2);
    no ground truth is used:

    >>> import numpy as np
    >>> from sgscn_jax.evaluation import ObjectConfig, dice, extract_object
    >>> yy, xx = np.mgrid[:32, :32]
    >>> lesion = (yy - 16) ** 2 + (xx - 15) ** 2 < 8 ** 2
    >>> labels = np.where(lesion, 1, np.where(xx < 16, 0, 2))
    >>> image = np.where(lesion, 0.3, 0.8)[..., None] * np.ones(3)   # [32, 32, 3]
    >>> found = extract_object(labels, image, ObjectConfig(profile="lesion"))
    >>> found.mask.shape, found.mask.dtype, found.foreground_ids.tolist()
    ((32, 32), dtype('bool'), [1])
    >>> dice(found.mask, lesion) > 0.95
    True
  """
  labels = np.asarray(labels)
  shape = labels.shape
  image = as_channels(image, shape)
  thin = config.profile == "vessels"
  work = shape if thin else analysis_shape(shape, config.analysis_size)
  frame_in = 0 if config.frame == 0 else max(1, round(config.frame * max(shape) / max(work)))
  filled = fill_frame(labels, frame_in)
  if valid is not None:
    filled = np.where(np.asarray(valid, bool), filled, -1)
  dense, ids = dense_ids(resize_nearest(filled, work))
  cluster_of = np.arange(len(ids))           # the cluster (index into ids) of each region
  if config.pieces:
    dense, cluster_of = connected_pieces(dense)
  k = len(cluster_of)
  image = resize_image(image, work)
  # The object channel: the most bimodal smoothed candidate (a channel or PC1) inside the
  # central field (and `valid`), and its Otsu threshold there (data.channels).
  field = channels.central_field(work) & (dense >= 0)
  if not field.any():
    field = dense >= 0
  name, x = channels.select_channel(image, config.channel, config.channel_sigma, field=field)
  threshold = channels.otsu_threshold(x[field]) if np.ptp(x[field]) > 0 else float(x.max())
  if config.profile == "mass":
    return _mass(dense, ids, cluster_of, x, threshold, name, shape, valid, config)
  if config.regions is None or config.regions >= k:
    lookup = np.arange(k)                    # the finest level: no merge needed
  else:
    counts, sums = region_sums(dense, x[..., None], k)
    lookups = merge_sequence(counts, sums, adjacency(dense, k))
    lookup = lookups[int(np.clip(k - config.regions, 0, len(lookups) - 1))]
  regions = np.append(lookup, -1)[dense]
  n = int(lookup.max()) + 1 if k else 0
  regions_out = resize_nearest(regions, shape)
  if n < 2:
    return ObjectResult(np.zeros(shape, bool), regions_out, ids[:0], f"{n} region(s): no object")
  size, totals = region_sums(regions, x[..., None], n)
  mean = totals[:, 0] / np.maximum(size, 1)
  ring = border_ring(work, config.frame) & (regions >= 0)
  contact_of = lambda side: float(np.isin(regions[ring], side).mean()) if ring.any() else 0.0
  sides = {"dark": np.flatnonzero(mean <= threshold), "bright": np.flatnonzero(mean > threshold)}
  for key, pick in (("dark", np.argmin), ("bright", np.argmax)):  # a side is never empty
    if not len(sides[key]):
      sides[key] = np.array([int(pick(mean))])
  order = _side_order(config, {k: contact_of(v) for k, v in sides.items()},
                      {k: int(np.isin(regions, v).sum()) for k, v in sides.items()})
  tries = order if config.profile == "lungs" and config.polarity == "auto" else order[:1]
  skipped = []
  for key in tries:
    obj, how = _RULES[config.profile](np.isin(regions, sides[key]), config)
    if obj.any():
      break
    skipped.append(key)
  else:
    key = tries[0]
  chosen = sides[key]
  if config.profile == "lesion" and config.rim_band > 0 and obj.any():
    pixels = x <= threshold if key == "dark" else x > threshold
    before = int(obj.sum())
    obj = grow_into(obj, pixels & (dense >= 0), config.rim_band, config.opening_radius)
    how += (f"; rim: grew {obj.sum() / max(before, 1) - 1:+.0%} into its side within "
            f"{config.rim_band} px")
  mask = resize_nearest(obj, shape)
  if valid is not None:
    mask &= np.asarray(valid, bool)
  how += "".join(f"; the {q} side left nothing" for q in skipped)
  reason = (f"{config.profile}: the {key} side of channel {name} (Otsu threshold "
            f"{threshold:.3f}): {len(chosen)} of {n} regions, border contact "
            f"{contact_of(chosen):.2f}; {how}; object {mask.mean():.3f} of the image")
  return ObjectResult(mask, regions_out, np.unique(ids[cluster_of[np.isin(lookup, chosen)]]),
                      reason)
