"""Optional hair removal for dermoscopy images in the manner of DullRazor (Lee et al. 1997).

Host-side (NumPy / SciPy / scikit-image); nothing here reads ground truth. For an image
`[H, W, C]` float in [0, 1] with long side S = max(H, W):

  1. Luminance Y = 0.299 R + 0.587 G + 0.114 B (C == 3; the channel mean otherwise).
  2. Directional black-hats (DullRazor's grey closings with line elements):
         B_theta = closing(Y, line_theta) - Y >= 0,
     flat lines of L = nearest odd integer to `line_fraction * S` (>= 3) pixels at
     `n_orientations` angles theta_k = 180 k / n degrees. A dark line thinner than ~L
     across is filled by the closing with the line roughly perpendicular to it, so
     B_max = max_theta B_theta is its contrast (DullRazor's generalised closing); a dark
     region wider than L in every direction (a lesion, the vignette) is filled by no line,
     so B_max ~ 0 inside it.
  3. Hair test per pixel (a hair is dark, thin AND long and straight over ~2L):
         B_max - B_min > `threshold`   and   B_min <= `anisotropy` * B_max,
     B_max = max_theta B_theta (length L, `n_orientations` angles) and B_min =
     min_theta B'_theta with longer lines, L' = 2 floor(`along_factor` L / 2) + 1, at
     `n_along_orientations` angles. The line along a hair stays inside it, so B_min ~ 0
     there; a dot, globule, pigment-network mesh or noise whose dark segments are shorter
     than ~L' is filled in every direction, so B_min ~ B_max and it is rejected. (An
     addition to DullRazor, whose own check is a length/thickness test on the mask.)
  4. Shape check: 8-connected components whose bounding-box diagonal is below
     `min_length_fraction * S` are dropped (short fragments are not hairs).
  5. Dilation by a disk of radius r = max(1, round(`dilate_fraction * S`)) to cover the
     hair's soft edges -> `hair_mask`.
  6. Inpainting (`remove_hair`): push-pull normalised convolution (`inpaint_push_pull`):
     values I K and weights K = ~mask are blurred ([1, 2, 1] binomial) and halved in size
     down to one pixel; back up, each level keeps its own estimate sum(I K) / sum(K)
     where the local known fraction w >= `min_weight` and otherwise blends towards the
     coarser estimate, linearly interpolated: e = a (I K)/w + (1 - a) up(e_coarser),
     a = min(1, w / min_weight). Every hair pixel is filled from its nearest surroundings at
     the finest scale where they exist; O(H W) in all. Non-hair pixels are unchanged.

Defaults give, at 192x256: L = 5, L' = 11, length >= 13 px, r = 1; at 574x765: L = 15,
L' = 31, length >= 38 px, r = 2. Contrasts of thin hairs fall when an image is
downsampled (a 3-pixel hair becomes a 1-pixel, fainter one), so run this at the native
resolution, before any resizing, where possible. Known false positives: long dark cracks
(e.g. in immersion gel), dark image-border lines and, less often, long pigment-network
strands; the inpainting then replaces them by their surroundings' mean.

Time (this 2-core machine, itself busy: load ~3; PH2 images): `hair_mask` ~ 50 ms and
`remove_hair` ~ 60 ms at 192x256; ~ 1.0 s and ~ 1.3 s at 574x765 (most of it the 14
diagonal closings with the 31-pixel lines).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from skimage import draw, morphology, util


@dataclasses.dataclass(frozen=True)
class HairConfig:
  """Settings of DullRazor-style hair removal (sizes relative to the long side S).

  Attributes:
    line_fraction: line structuring element length L = nearest odd integer to
      line_fraction * S, at least 3 (5 px at S = 256, 15 px at S = 765). Dark lines up
      to about L - 1 px across are detected.
    n_orientations: angles of the length-L lines (B_max), evenly spaced over [0, 180)
      degrees (8 -> every 22.5).
    along_factor: the along-the-hair test uses lines of L' = 2 floor(along_factor L / 2)
      + 1 pixels (31 for L = 15): a hair must be straight and dark over ~L'.
    n_along_orientations: angles of the length-L' lines (B_min); 16 (every 11.25 deg)
      keeps a line within ~1.5 px of a hair's axis over L' = 31.
    threshold: minimum anisotropic black-hat contrast B_max - B_min (luminance units of an
      image in [0, 1]), fixed as in DullRazor; 0.08 ~ 20 grey levels of 255.
    anisotropy: a hair pixel needs B_min <= anisotropy * B_max (1 disables this half
      of the along test; B_min still enters the contrast B_max - B_min).
    min_length_fraction: components whose bounding-box diagonal is below
      min_length_fraction * S are dropped (0 keeps all).
    dilate_fraction: the mask is dilated by a disk of radius
      max(1, round(dilate_fraction * S)); a negative value disables the dilation.
    min_weight: inpainting: a scale's own estimate is fully trusted where the fraction of
      non-hair pixels in its neighbourhood is >= min_weight.
  """
  line_fraction: float = 0.02
  n_orientations: int = 8
  along_factor: float = 2.0
  n_along_orientations: int = 16
  threshold: float = 0.08
  anisotropy: float = 0.5
  min_length_fraction: float = 0.05
  dilate_fraction: float = 0.003
  min_weight: float = 0.5

  def __post_init__(self):
    if self.line_fraction <= 0:
      raise ValueError(f"line_fraction must be > 0, got {self.line_fraction}")
    if self.n_orientations < 1:
      raise ValueError(f"n_orientations must be >= 1, got {self.n_orientations}")
    if self.along_factor < 1:
      raise ValueError(f"along_factor must be >= 1, got {self.along_factor}")
    if self.n_along_orientations < 1:
      raise ValueError(
          f"n_along_orientations must be >= 1, got {self.n_along_orientations}")
    if not 0 <= self.anisotropy <= 1:
      raise ValueError(f"anisotropy must be in [0, 1], got {self.anisotropy}")
    if not 0 < self.min_weight <= 1:
      raise ValueError(f"min_weight must be in (0, 1], got {self.min_weight}")


def line_length(shape: tuple[int, ...], config: HairConfig = HairConfig()) -> int:
  """L = nearest odd integer to `config.line_fraction * max(H, W)`, at least 3."""
  s = config.line_fraction * max(shape[:2])
  return max(3, 2 * int(np.floor((s - 1) / 2 + 0.5)) + 1)


def along_length(length: int, config: HairConfig = HairConfig()) -> int:
  """L' = 2 floor(along_factor * L / 2) + 1, odd and >= L: 31 for L = 15, 11 for L = 5."""
  return max(length, 2 * int(np.floor(config.along_factor * length / 2)) + 1)


def line_footprint(length: int, angle_deg: float) -> np.ndarray:
  """A flat digital line `[L, L]` bool of `length` (odd) pixels through the centre.

  With h = (L - 1) / 2 and theta the angle from the horizontal (counter-clockwise), the
  end points are centre +- h * (-sin theta, cos theta) / max(|sin theta|, |cos theta|)
  (row, col), rounded, so that every angle spans L pixels along its major axis (the
  diagonal at 45 degrees is L pixels, not L / sqrt(2)); the pixels between come from
  Bresenham (`skimage.draw.line`), made symmetric about the centre.
  """
  h = (length - 1) / 2
  t = np.deg2rad(angle_deg)
  sin, cos = np.sin(t), np.cos(t)
  scale = h / max(abs(sin), abs(cos))
  dr, dc = -scale * sin, scale * cos
  fp = np.zeros((length, length), bool)
  rr, cc = draw.line(int(round(h + dr)), int(round(h + dc)),
                     int(round(h - dr)), int(round(h - dc)))
  fp[rr, cc] = True
  return fp | fp[::-1, ::-1]


def luminance(image: np.ndarray) -> np.ndarray:
  """`[H, W, C] -> [H, W]` float64: 0.299 R + 0.587 G + 0.114 B if C == 3, else the mean."""
  image = np.asarray(image, np.float64)
  if image.shape[-1] == 3:
    return image @ np.array([0.299, 0.587, 0.114])
  return image.mean(axis=-1)


def directional_black_hats(y: np.ndarray, length: int,
                           n_orientations: int = 8) -> np.ndarray:
  """B_theta = closing(y, line_theta) - y for theta_k = 180 k / n degrees.

  Horizontal and vertical lines use SciPy's separable min/max filters, other angles a
  flat `line_footprint`; borders are reflected.

  Args:
    y: `[H, W]` float.
    length: line length L (odd).
    n_orientations: n.

  Returns:
    `[n, H, W]` float64, >= 0.
  """
  out = np.empty((n_orientations,) + y.shape, np.float64)
  for k in range(n_orientations):
    angle = 180.0 * k / n_orientations
    if angle == 0.0:
      closed = ndimage.grey_closing(y, size=(1, length), mode="reflect")
    elif angle == 90.0:
      closed = ndimage.grey_closing(y, size=(length, 1), mode="reflect")
    else:
      closed = ndimage.grey_closing(y, footprint=line_footprint(length, angle),
                                    mode="reflect")
    out[k] = np.maximum(closed - y, 0.0)
  return out


def _drop_short_components(mask: np.ndarray, min_length: float) -> np.ndarray:
  """Keep the 8-connected components of `mask` whose bounding-box diagonal >= min_length."""
  if min_length <= 0 or not mask.any():
    return mask
  labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
  keep = np.zeros(n + 1, bool)
  for i, sl in enumerate(ndimage.find_objects(labels), start=1):
    keep[i] = np.hypot(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) >= min_length
  return keep[labels]


def _as_hwc(image: np.ndarray) -> np.ndarray:
  """`[H, W, C]` (a grey `[H, W]` gets C = 1); integer images scaled to [0, 1] by their
  dtype's maximum (`skimage.util.img_as_float`), floats kept as they are."""
  image = np.asarray(image)
  if not np.issubdtype(image.dtype, np.floating):
    image = util.img_as_float(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3:
    raise ValueError(f"image must be [H, W, C] (or [H, W]), got shape {image.shape}")
  return image


def hair_mask(image: np.ndarray, config: HairConfig = HairConfig()) -> np.ndarray:
  """Hair pixels of a dermoscopy image (steps 1-5 of the module docstring).

  Args:
    image: `[H, W, C]` float in [0, 1] (RGB for C = 3; `[H, W]` is taken as grey; an
      integer image is scaled by its dtype's maximum).
    config: `HairConfig`.

  Returns:
    `[H, W]` bool, True = hair (dilated).
  """
  image = _as_hwc(image)
  s = max(image.shape[:2])
  y = luminance(image)
  length = line_length(image.shape, config)
  b_max = directional_black_hats(y, length, config.n_orientations).max(axis=0)
  b_min = directional_black_hats(y, along_length(length, config),
                                 config.n_along_orientations).min(axis=0)
  mask = (b_max - b_min > config.threshold) & (b_min <= config.anisotropy * b_max)
  mask = _drop_short_components(mask, config.min_length_fraction * s)
  if config.dilate_fraction >= 0 and mask.any():
    radius = max(1, int(round(config.dilate_fraction * s)))
    mask = ndimage.binary_dilation(mask, structure=morphology.disk(radius))
  return mask


def _binomial(x: np.ndarray) -> np.ndarray:
  """[1, 2, 1] / 4 along both spatial axes (0, 1), borders reflected."""
  k = np.array([0.25, 0.5, 0.25])
  x = ndimage.correlate1d(x, k, axis=0, mode="reflect")
  return ndimage.correlate1d(x, k, axis=1, mode="reflect")


def _upsample_linear(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """Linear interpolation of a level decimated by [::2] back to `shape` (H, W).

  Coarse pixel i sits at fine position 2 i: fine pixel p takes (1 - f) x[i0] + f x[i1]
  with i0 = floor(p / 2), i1 = min(i0 + 1, n - 1), f = p / 2 - i0 (edges clamped).
  """
  for axis, n in enumerate(shape):
    pos = np.arange(n) / 2.0
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, x.shape[axis] - 1)
    f = (pos - i0).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    x = np.take(x, i0, axis=axis) * (1.0 - f) + np.take(x, i1, axis=axis) * f
  return x


def _push_pull(v: np.ndarray, w: np.ndarray, min_weight: float) -> np.ndarray:
  """Estimate `[H, W, C]` from weighted sums v `[H, W, C]` and weights w `[H, W]`."""
  h, wd = w.shape
  if min(h, wd) < 2:
    total = w.sum()
    mean = v.reshape(-1, v.shape[-1]).sum(0) / total if total > 0 else np.zeros(v.shape[-1])
    coarse = np.broadcast_to(mean, v.shape)
  else:
    coarse_small = _push_pull(_binomial(v)[::2, ::2], _binomial(w)[::2, ::2], min_weight)
    coarse = _upsample_linear(coarse_small, (h, wd))
  alpha = np.clip(w / min_weight, 0.0, 1.0)[..., None]
  own = v / np.maximum(w, 1e-12)[..., None]
  return alpha * own + (1.0 - alpha) * coarse


def inpaint_push_pull(image: np.ndarray, mask: np.ndarray,
                      min_weight: float = 0.5) -> np.ndarray:
  """Fill the `mask` pixels from their surroundings by push-pull normalised convolution.

  Level 0: v = I K, w = K = ~mask. Push: v_{l+1} = down(v_l), w_{l+1} = down(w_l), with
  down = [1, 2, 1] binomial blur then every second pixel, until a side is 1. Pull:
  e_l = a_l v_l / w_l + (1 - a_l) up(e_{l+1}), a_l = min(1, w_l / min_weight), up =
  linear interpolation (coarse pixel i at fine position 2 i); the coarsest level is the
  global mean of the known pixels. w_l is the local known fraction, so each masked pixel
  takes the mean of its known neighbours at the finest scale that has enough of them. It
  is zero-order: a ramp across a hole is matched to within a few pixels' worth of slope.

  Args:
    image: `[H, W, C]` float.
    mask: `[H, W]` bool, True = to fill.
    min_weight: known fraction above which a level's own estimate is fully trusted.

  Returns:
    `[H, W, C]` of image's dtype; unmasked pixels bit-for-bit those of `image`.
  """
  image = np.asarray(image)
  out = np.array(image, copy=True)
  if not mask.any():
    return out
  if mask.all():
    raise ValueError("mask covers the whole image: nothing to inpaint from")
  known = (~mask).astype(np.float64)
  filled = _push_pull(image.astype(np.float64) * known[..., None], known, min_weight)
  out[mask] = filled[mask]
  return out


def remove_hair(image: np.ndarray, config: HairConfig = HairConfig(),
                mask: np.ndarray | None = None) -> np.ndarray:
  """DullRazor-style hair removal: `hair_mask`, then `inpaint_push_pull`.

  Args:
    image: `[H, W, C]` float in [0, 1] (`[H, W]` grey is accepted and returned `[H, W]`).
    config: `HairConfig`.
    mask: the hair mask if already computed (`hair_mask(image, config)`).

  Returns:
    `[H, W, C]` float in [0, 1] (image's float dtype; an integer image is first scaled
    to [0, 1] floats by its dtype's maximum): hair pixels inpainted from their non-hair
    surroundings, every other pixel unchanged.
  """
  squeeze = np.ndim(image) == 2
  image = _as_hwc(image)
  mask = hair_mask(image, config) if mask is None else np.asarray(mask, bool)
  if mask.all() or not mask.any():
    return image[..., 0].copy() if squeeze else image.copy()
  out = inpaint_push_pull(image, mask, config.min_weight)
  out[mask] = np.clip(out[mask], 0.0, 1.0)
  return out[..., 0] if squeeze else out
