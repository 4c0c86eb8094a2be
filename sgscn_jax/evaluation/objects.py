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
6. Profile rules: a few generic steps per kind of object.
Negative labels (and pixels outside `valid`) are ignored: no statistic, adjacency or
object. Rank-generic (2D, 3D) unless said.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage
from skimage import measure, morphology, transform

from sgscn_jax.data import channels

PROFILES = ("lesion", "lungs", "vessels")
POLARITIES = ("auto", "dark", "bright")


@dataclasses.dataclass(frozen=True)
class ObjectConfig:
  """What the object is (a data-set prior, never per-case ground truth) and the rules' knobs.

  Attributes:
    profile: "lesion" | "lungs" | "vessels" (see `extract_object`).
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

  def __post_init__(self):
    if self.profile not in PROFILES:
      raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
    if self.polarity not in POLARITIES:
      raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
    if (self.regions is not None and self.regions < 1) or self.frame < 0 or (
        self.opening_radius < 0):
      raise ValueError("regions must be >= 1, frame and opening_radius >= 0")


class ClusterStats(NamedTuple):
  """One row per cluster id present (ascending ids); arrays `[K]`, `mean` `[K, C]`."""
  ids: np.ndarray
  size: np.ndarray
  mean: np.ndarray
  centrality: np.ndarray
  border_contact: np.ndarray
  compactness: np.ndarray
  contrast: np.ndarray


class ObjectResult(NamedTuple):
  """mask `[*spatial]` bool, regions `[*spatial]` int (the level used; -1 ignored), both at
  the input's shape; foreground_ids: input cluster ids of the chosen region; reason."""
  mask: np.ndarray
  regions: np.ndarray
  foreground_ids: np.ndarray
  reason: str


# ------------------------------------------------------------------------- grid helpers


def fill_frame(labels: np.ndarray, frame: int = 1) -> np.ndarray:
  """Labels `[*spatial]` whose pixels within `frame` of a face take the nearest interior label.

  The interior is a box, so the nearest interior pixel of `x` is `clip(x_a, frame,
  n_a - 1 - frame)` on every axis `a` (in any p-norm); interior pixels are unchanged.
  """
  labels = np.asarray(labels)
  if frame <= 0:
    return labels
  index = []
  for n in labels.shape:
    lo = min(frame, (n - 1) // 2)
    index.append(np.clip(np.arange(n), lo, max(n - 1 - frame, lo)))
  return labels[np.ix_(*index)]


def border_ring(shape: Sequence[int], depth: int = 0) -> np.ndarray:
  """`[*shape]` bool: the pixels at exactly `depth` from the nearest face (clipped)."""
  dist = np.full(tuple(shape), max(shape))
  for a, n in enumerate(shape):
    i = np.arange(n).reshape((-1,) + (1,) * (len(shape) - a - 1))
    dist = np.minimum(dist, np.minimum(i, n - 1 - i))
  return dist == min(depth, int(dist.max()))


def analysis_shape(shape: Sequence[int], size: int | None) -> tuple[int, ...]:
  """`shape` scaled so its long side is `size` (sides `round(n * size / long)`, >= 1)."""
  if not size:
    return tuple(shape)
  return tuple(max(1, int(np.floor(n * size / max(shape) + 0.5))) for n in shape)


def resize_nearest(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Nearest-neighbour resampling of the leading axes: `out[i] = in[floor((i + .5) n / m)]`."""
  if array.shape[:len(shape)] == tuple(shape):
    return array
  index = [np.minimum(((np.arange(m) + 0.5) * n / m).astype(int), n - 1)
           for n, m in zip(array.shape, shape)]
  return array[np.ix_(*index)]


def _resize_image(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  if image.shape[:-1] == shape:
    return image
  shrink = any(m < n for n, m in zip(image.shape, shape))
  return transform.resize(image, shape + image.shape[-1:], order=1, anti_aliasing=shrink)


def _channels(image: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
  image = np.asarray(image, np.float64)
  image = image[..., None] if image.shape == spatial else image
  if image.shape[:-1] != spatial:
    raise ValueError(f"image {image.shape} does not match labels {spatial}")
  return image


def _ball(radius: int, ndim: int) -> np.ndarray:
  grid = np.indices((2 * radius + 1,) * ndim) - radius
  return (grid ** 2).sum(0) <= radius ** 2


# ------------------------------------------------------------------ cluster statistics


def _dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(dense `[*spatial]`, ids `[K]`): ids renumbered 0..K-1 in order of first appearance
  (raster order), so that the numbering does not depend on the ids' values; -1 kept."""
  flat = labels.ravel()
  valid = flat >= 0
  ids, first, inverse = np.unique(flat[valid], return_index=True, return_inverse=True)
  order = np.argsort(first, kind="stable")
  rank = np.empty(len(ids), np.int64)
  rank[order] = np.arange(len(ids))
  dense = np.full(flat.shape, -1, np.int64)
  dense[valid] = rank[inverse.ravel()]
  return dense.reshape(labels.shape), ids[order]


def _sums(dense: np.ndarray, image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel counts `[k]` and colour sums `[k, C]` of the regions 0..k-1 of `dense`."""
  valid = dense >= 0
  idx = dense[valid]
  counts = np.bincount(idx, minlength=k).astype(np.float64)
  sums = np.stack([np.bincount(idx, image[..., c][valid], minlength=k)
                   for c in range(image.shape[-1])], -1)
  return counts, sums


def _adjacency(dense: np.ndarray, k: int) -> np.ndarray:
  """`[k, k]` bool: regions sharing a face (4-neighbours in 2D); ignored pixels never."""
  adjacent = np.zeros((k, k), bool)
  for a in range(dense.ndim):
    lo = dense.take(np.arange(dense.shape[a] - 1), axis=a)
    hi = dense.take(np.arange(1, dense.shape[a]), axis=a)
    touch = (lo != hi) & (lo >= 0) & (hi >= 0)
    adjacent[lo[touch], hi[touch]] = True
  return adjacent | adjacent.T


def cluster_statistics(labels: np.ndarray, image: np.ndarray, *, frame: int = 1) -> ClusterStats:
  """Per-cluster statistics of `labels` `[*spatial]` int over `image` `[*spatial, C]` in [0, 1].

  The frame (`frame` pixels) is filled first (`fill_frame`), so frame-only clusters vanish.
  With N = valid pixels, n_k = pixels of cluster k, m_k = its mean colour:
    size = n_k / N; mean = m_k;
    centrality = 1 - |c_k - o| / |o|, c_k the centroid, o = (shape - 1) / 2 the centre;
    border_contact = share of the ring `border_ring(shape, frame)` (just inside the frame);
    compactness = 4 pi n_k / P_k^2, P_k skimage's perimeter (2D; a disc ~1); NaN in 3D;
    contrast = |m_k - sum_j n_j m_j / sum_j n_j| over the clusters j adjacent to k (NaN if none).
  """
  labels = fill_frame(np.asarray(labels), frame)
  image = _channels(image, labels.shape)
  dense, ids = _dense_ids(labels)
  order = np.argsort(ids)
  ids, k = ids[order], len(ids)
  remap = np.append(np.argsort(order), -1)
  dense = remap[dense]
  counts, sums = _sums(dense, image, k)
  mean = sums / np.maximum(counts, 1)[:, None]
  valid = dense >= 0
  centre = (np.asarray(labels.shape) - 1) / 2
  coords = np.stack([np.bincount(dense[valid], g[valid], minlength=k)
                     for g in np.indices(labels.shape)], -1) / np.maximum(counts, 1)[:, None]
  centrality = 1 - np.linalg.norm(coords - centre, axis=-1) / max(np.linalg.norm(centre), 1e-12)
  ring = border_ring(labels.shape, frame) & valid
  contact = np.bincount(dense[ring], minlength=k) / max(int(ring.sum()), 1)
  compactness = np.full(k, np.nan)
  if labels.ndim == 2:
    for prop in measure.regionprops(dense + 1):
      if prop.perimeter > 0:
        compactness[prop.label - 1] = 4 * np.pi * prop.area / prop.perimeter ** 2
  weights = _adjacency(dense, k) * counts[None, :]
  total = weights.sum(1)
  around = weights @ mean / np.maximum(total, 1e-12)[:, None]
  contrast = np.where(total > 0, np.linalg.norm(mean - around, axis=-1), np.nan)
  return ClusterStats(ids, counts / max(counts.sum(), 1), mean, centrality, contact,
                      compactness, contrast)


# ----------------------------------------------------------------------- the hierarchy


def _merge_sequence(counts: np.ndarray, sums: np.ndarray, adjacent: np.ndarray) -> list[np.ndarray]:
  """Lookups `[K]` (region -> level id), K regions down to 2 (see `region_hierarchy`).

  Counts n `[K]`, feature sums s `[K, C]`; the pair merged minimises Ward's cost
  n_i n_j / (n_i + n_j) |s_i/n_i - s_j/n_j|^2 (the increase of the within-region sum of
  squares), ties to the smallest (i, j); a merged region keeps its smallest member index."""
  k = len(counts)
  counts, sums, adjacent = counts.copy(), sums.copy(), adjacent.copy()
  owner, active = np.arange(k), np.ones(k, bool)
  upper = np.triu(np.ones((k, k), bool), 1)
  lookups = [np.arange(k)]
  while active.sum() > 2:
    mean = sums / np.maximum(counts, 1)[:, None]
    weight = counts[:, None] * counts[None] / np.maximum(counts[:, None] + counts[None], 1)
    cost = weight * np.sum(np.square(mean[:, None] - mean[None]), axis=-1)
    pairs = upper & active[:, None] & active[None]
    allowed = pairs & adjacent if (pairs & adjacent).any() else pairs
    i, j = divmod(int(np.where(allowed, cost, np.inf).argmin()), k)
    counts[i] += counts[j]
    sums[i] += sums[j]
    adjacent[i] |= adjacent[j]
    adjacent[:, i] = adjacent[i]
    adjacent[i, i], active[j] = False, False
    owner[owner == j] = i
    lookups.append((np.cumsum(active) - 1)[owner])
  return lookups


def region_hierarchy(labels: np.ndarray, image: np.ndarray) -> list[np.ndarray]:
  """Nested segmentations `[*spatial]` int from K regions down to 2 (one merge per level).

  level[0] is `labels` renumbered 0..K-1 in order of first appearance (raster order);
  level[i + 1] merges the two face-adjacent regions of level[i] of least Ward cost
  n_i n_j / (n_i + n_j) |m_i - m_j|^2 (m the regions' mean features, e.g. colours; ties
  to the earliest-appearing pair), or the cheapest non-adjacent pair once the adjacency
  graph has no edge left. Ward's cost is Otsu's criterion for regions: in one feature,
  the 2-region level splits the regions where the between-class variance is largest. A greedy loop on
  cluster-level sums (O(K^3) on K x K matrices, plus one lookup per level; ~5 ms at
  256 x 256, K = 15). Negative labels stay -1. One level if K <= 2.
  """
  labels = np.asarray(labels)
  dense, ids = _dense_ids(labels)
  counts, sums = _sums(dense, _channels(image, labels.shape), len(ids))
  lookups = _merge_sequence(counts, sums, _adjacency(dense, len(ids)))
  return [np.append(lookup, -1)[dense] for lookup in lookups]


def level(hierarchy: Sequence[np.ndarray], regions: int) -> np.ndarray:
  """The level of `hierarchy` with `regions` regions (clipped to the counts that exist)."""
  counts = [int(lv.max()) + 1 for lv in hierarchy]
  return hierarchy[counts.index(int(np.clip(regions, min(counts), max(counts))))]


# --------------------------------------------------------------------- post-processing


def fill_holes(mask: np.ndarray) -> np.ndarray:
  """`mask` plus the background components that do not reach the border."""
  return ndimage.binary_fill_holes(mask)


def open_mask(mask: np.ndarray, radius: int) -> np.ndarray:
  """Binary opening with a ball of `radius`; the image is edge-padded so that an object
  is not eroded where it meets the border. radius 0 = unchanged."""
  if radius <= 0:
    return mask
  padded = np.pad(mask, radius + 1, mode="edge")
  opened = ndimage.binary_opening(padded, _ball(radius, mask.ndim))
  return opened[(slice(radius + 1, -radius - 1),) * mask.ndim]


def close_mask(mask: np.ndarray, radius: int) -> np.ndarray:
  """Binary closing with a ball of `radius` (edge-padded like `open_mask`); 0 = unchanged."""
  if radius <= 0:
    return mask
  padded = np.pad(mask, radius + 1, mode="edge")
  closed = ndimage.binary_closing(padded, _ball(radius, mask.ndim))
  return closed[(slice(radius + 1, -radius - 1),) * mask.ndim]


def _components(mask: np.ndarray, full: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(component map, pixel counts `[n + 1]`, index 0 = background); face connectivity
  unless `full`."""
  structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim if full else 1)
  comp, n = ndimage.label(mask, structure)
  return comp, np.bincount(comp.ravel(), minlength=n + 1)


def central_component(mask: np.ndarray, centre_weight: float = 4.0,
                      border_penalty: float = 0.3) -> np.ndarray:
  """The component (face connectivity) of best `area * exp(-centre_weight * d)`, d = centroid
  distance from the centre / half-diagonal; x `border_penalty` if it touches the border."""
  comp, area = _components(mask)
  if len(area) == 1:
    return np.zeros_like(mask)
  centre = (np.asarray(mask.shape) - 1) / 2
  coords = np.stack([np.bincount(comp.ravel(), g.ravel(), minlength=len(area))
                     for g in np.indices(mask.shape)], -1) / np.maximum(area, 1)[:, None]
  d = np.linalg.norm(coords - centre, axis=-1) / max(np.linalg.norm(centre), 1e-12)
  score = area / mask.size * np.exp(-centre_weight * d)
  score[np.unique(comp[border_ring(mask.shape)])] *= border_penalty
  score[0] = -1
  return comp == int(score.argmax())


def drop_border_components(mask: np.ndarray) -> np.ndarray:
  """`mask` without its components (face connectivity) that touch the image border."""
  comp, _ = _components(mask)
  return mask & ~np.isin(comp, comp[border_ring(mask.shape)])


def largest_components(mask: np.ndarray, count: int, min_fraction: float = 0.0) -> np.ndarray:
  """The `count` largest components (face connectivity) of at least `min_fraction` of the image."""
  comp, area = _components(mask)
  area[0] = 0
  keep = np.argsort(-area, kind="stable")[:count]
  return np.isin(comp, keep[area[keep] >= max(min_fraction * mask.size, 1)])


def drop_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
  """`mask` without components (full connectivity) of fewer than `min_size` pixels."""
  comp, area = _components(mask, full=True)
  return mask & (area[comp] >= min_size)


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
  of the other side (soft tissue; its pieces of at least `min_lung_fraction` of the image
  after a closing): in this encoding
  the chest wall is a speckled ring with gaps, which a hole-filling rule cannot close. The
  object is the side inside the hull, opened, its `lung_count` largest components (>=
  `min_lung_fraction` each), holes filled. 2D (the hull is per slice in 3D)."""
  radius = max(config.opening_radius, 1)
  closed = close_mask(~side, radius)
  comp, area = _components(closed)
  tissue = closed & (area[comp] >= config.min_lung_fraction * side.size)  # no specks
  hull = _convex_hull(tissue) if tissue.any() else tissue
  if hull.mean() < config.min_body_fraction:
    return np.zeros_like(side), f"no body (its hull is {hull.mean():.2f} of the image)"
  inside = open_mask(side & hull, radius)
  obj = fill_holes(largest_components(inside, config.lung_count, config.min_lung_fraction))
  parts = len(_components(obj)[1]) - 1
  return obj, f"inside the body's convex hull, opened (r={radius}), {parts} component(s)"


def _convex_hull(mask: np.ndarray) -> np.ndarray:
  if mask.ndim == 2:
    return morphology.convex_hull_image(mask)
  return np.stack([morphology.convex_hull_image(m) if m.any() else m for m in mask])


def _vessels(side: np.ndarray, config: ObjectConfig) -> tuple[np.ndarray, str]:
  size = config.min_vessel_size
  return drop_small_components(side, size), f"the side as it is, components >= {size} px"


_RULES = {"lesion": _lesion, "lungs": _lungs, "vessels": _vessels}


def extract_object(labels: np.ndarray, image: np.ndarray, config: ObjectConfig = ObjectConfig(),
                   *, valid: np.ndarray | None = None) -> ObjectResult:
  """The object of a label map: frame filled, analysis size, hierarchy level, profile rule.

  At the level with `config.regions` regions, one region is the object side
  (`_candidates`: polarity dark / bright = lowest / highest mean luminance, the mean over
  channels; auto = least border contact for lesion, most for lungs, dark for vessels). Then:
    lesion: opening, holes filled in the components off the border, the best
      `central_component`, fill holes; if empty, the raw side's central component.
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
  """
  labels = np.asarray(labels)
  shape = labels.shape
  image = _channels(image, shape)
  thin = config.profile == "vessels"
  work = shape if thin else analysis_shape(shape, config.analysis_size)
  frame_in = 0 if config.frame == 0 else max(1, round(config.frame * max(shape) / max(work)))
  filled = fill_frame(labels, frame_in)
  if valid is not None:
    filled = np.where(np.asarray(valid, bool), filled, -1)
  dense, ids = _dense_ids(resize_nearest(filled, work))
  image = _resize_image(image, work)
  # The object channel: the most bimodal smoothed candidate (a channel or PC1) inside the
  # central field (and `valid`), and its Otsu threshold there (data.channels).
  field = channels.central_field(work) & (dense >= 0)
  if not field.any():
    field = dense >= 0
  name, x = channels.most_bimodal_channel(image, config.channel_sigma, field=field)
  threshold = channels.otsu_threshold(x[field]) if np.ptp(x[field]) > 0 else float(x.max())
  counts, sums = _sums(dense, x[..., None], len(ids))
  lookups = _merge_sequence(counts, sums, _adjacency(dense, len(ids)))
  wanted = len(ids) if config.regions is None else config.regions
  lookup = lookups[int(np.clip(len(ids) - wanted, 0, len(lookups) - 1))]
  regions = np.append(lookup, -1)[dense]
  n = int(lookup.max()) + 1 if len(ids) else 0
  regions_out = resize_nearest(regions, shape)
  if n < 2:
    return ObjectResult(np.zeros(shape, bool), regions_out, ids[:0], f"{n} region(s): no object")
  size, region_sums = _sums(regions, x[..., None], n)
  mean = region_sums[:, 0] / np.maximum(size, 1)
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
  mask = resize_nearest(obj, shape)
  if valid is not None:
    mask &= np.asarray(valid, bool)
  how += "".join(f"; the {q} side left nothing" for q in skipped)
  reason = (f"{config.profile}: the {key} side of channel {name} (Otsu threshold "
            f"{threshold:.3f}): {len(chosen)} of {n} regions, border contact "
            f"{contact_of(chosen):.2f}; {how}; object {mask.mean():.3f} of the image")
  return ObjectResult(mask, regions_out, np.sort(ids[np.isin(lookup, chosen)]), reason)
