"""Classical, label-free two-phase baselines: Otsu thresholding and Chan-Vese.

Host-side (NumPy / SciPy / scikit-image) methods for one image `[*spatial, C]` (float in
[0, 1], channels last) that return a label map `[*spatial]` int32 in {0, 1}. Neither
reads ground truth; both are deterministic.

Both work on one scalar channel, chosen among the candidates of `candidate_channels`:

  "0", "1", ..., "C-1"  the raw channels;
  "pc1"                 (only when C > 1) the first principal component of the pixel
                        colours, sign fixed so that its loadings sum to >= 0 (PC1 rises
                        with brightness), min-max rescaled to [0, 1].

Each candidate is Gaussian-smoothed (`sigma`, pixels at the size of the image passed in)
and, with `channel="auto"`, the one with the largest Otsu separability

    eta = sigma_B^2(t*) / sigma_T^2          (`bimodality`)

wins (ties: the first in the order 0, 1, ..., C-1, pc1).

Label convention, shared by both methods: label 1 is the side of the two-phase split with
the HIGHER mean of the chosen (smoothed) channel, label 0 the darker side. A later object
step can then pick "dark" (0, e.g. a pigmented lesion on skin) or "bright" (1).

Timings (this 2-core machine, itself busy: load ~3; 192x256x3 PH2 images, defaults,
channel "auto"):
  otsu_labels       ~ 15 ms
  chan_vese_labels  ~ 0.5-0.75 s (~6 ms per Chan-Vese iteration; 80-160 iterations to
                    the `tol=1e-3` stop); the `max_num_iter=200` cap bounds it at ~1.2 s,
                    under the 3 s budget.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import segmentation

from sgscn_jax.data.channels import (FIELDS, bimodality, candidate_channels,  # noqa: F401
                                     central_field, first_principal_component,
                                     most_bimodal_channel, otsu_threshold, select_channel,
                                     smooth)
from sgscn_jax.registry import Method


@dataclasses.dataclass(frozen=True)
class OtsuConfig:
  """Settings of the Otsu baseline.

  Attributes:
    sigma: standard deviation (pixels / voxels of the image passed in) of the Gaussian
      smoothing of every candidate channel before thresholding; 0 = none.
    channel: "auto" (the most bimodal candidate, see `most_bimodal_channel`), "pc1", or a
      channel index as a string ("0", "1", "2", ...).
    nbins: histogram bins of `skimage.filters.threshold_otsu`.
    field: where the channel's bimodality and the threshold are measured: "central" (the
      ellipsoid inscribed in the image: dermoscopy and endoscopy images carry dark
      vignette corners that otherwise decide both; on the 40 PH2 cases the "auto"
      channel scored object DSC 73.2 with "all" and 87.5 with "central") or "all".
      Every pixel is labelled either way.
  """
  sigma: float = 2.0
  channel: str = "auto"
  nbins: int = 256
  field: str = "central"

  def __post_init__(self):
    _check_sigma_channel(self.sigma, self.channel)
    if self.field not in FIELDS:
      raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")
    if self.nbins < 2:
      raise ValueError(f"nbins must be >= 2, got {self.nbins}")


@dataclasses.dataclass(frozen=True)
class ChanVeseConfig:
  """Settings of the Chan-Vese baseline (`skimage.segmentation.chan_vese`).

  Chan-Vese minimises, over a level set phi (region R = {phi > 0}) and two constants,

      mu * length(dR) + lambda1 * sum_{R} (I - c1)^2 + lambda2 * sum_{not R} (I - c2)^2

  on the channel I min-max normalised to [0, 1] by scikit-image. One iteration costs
  ~6 ms at 192x256; the loop stops when the RMS change of phi between iterations falls
  below `tol` or after `max_num_iter` iterations (200 -> at most ~1.2 s at 192x256).

  Attributes:
    sigma: Gaussian smoothing of the candidate channels (pixels), as in `OtsuConfig`.
    channel: "auto", "pc1" or a channel index string, as in `OtsuConfig`.
    mu: weight of the boundary length (larger = rounder, fewer small regions).
    max_num_iter: iteration cap (bounds the run time, see above).
    tol: stop when sqrt(mean((phi_t - phi_{t-1})^2)) < tol.
    lambda1: weight of the fit inside {phi > 0}.
    lambda2: weight of the fit outside {phi > 0}.
    dt: step size of the level-set update.
    init_level_set: scikit-image's initial level set name ("checkerboard", "disk",
      "small disk"); "checkerboard" converges fastest and finds implicit edges anywhere.
    field: where the "auto" channel's bimodality is measured (`OtsuConfig.field`).
  """
  sigma: float = 1.0
  channel: str = "auto"
  mu: float = 0.25
  max_num_iter: int = 200
  tol: float = 1e-3
  lambda1: float = 1.0
  lambda2: float = 1.0
  dt: float = 0.5
  init_level_set: str = "checkerboard"
  field: str = "central"

  def __post_init__(self):
    _check_sigma_channel(self.sigma, self.channel)
    if self.max_num_iter < 1:
      raise ValueError(f"max_num_iter must be >= 1, got {self.max_num_iter}")
    if self.tol < 0:
      raise ValueError(f"tol must be >= 0, got {self.tol}")
    if self.init_level_set not in ("checkerboard", "disk", "small disk"):
      raise ValueError(f"unknown init_level_set {self.init_level_set!r}")


def _check_sigma_channel(sigma: float, channel: str) -> None:
  if sigma < 0:
    raise ValueError(f"sigma must be >= 0, got {sigma}")
  if not (channel in ("auto", "pc1") or (isinstance(channel, str) and channel.isdigit())):
    raise ValueError(f"channel must be 'auto', 'pc1' or a channel index string, got "
                     f"{channel!r}")


def bright_is_one(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
  """`[*spatial]` int32: the two-phase `mask` relabelled so that 1 = higher mean `values`.

  If one side is empty the mask is returned as is (all 0 or all 1); ties of the means
  keep the mask.
  """
  mask = np.asarray(mask, bool)
  if mask.all() or not mask.any():
    return mask.astype(np.int32)
  if values[mask].mean() < values[~mask].mean():
    mask = ~mask
  return mask.astype(np.int32)


def otsu_labels(image: np.ndarray, config: OtsuConfig = OtsuConfig()) -> np.ndarray:
  """Otsu's threshold of one smoothed channel, 2D or 3D.

  x = the chosen channel after `config.sigma` smoothing; labels = [x > t*], t* =
  `skimage.filters.threshold_otsu(x[F])` with F the field (`config.field`: the inscribed
  ellipse, or every pixel). Label 1 (above t*) is thus the brighter side of x by
  construction. A constant channel gives all 0. ~15 ms at 192x256x3 ("auto").

  Args:
    image: `[*spatial, C]` float in [0, 1] (any number of spatial axes: 2D, 3D).
    config: `OtsuConfig`.

  Returns:
    `[*spatial]` int32 in {0, 1}.
  """
  image = np.asarray(image)
  field = central_field(image.shape[:-1]) if config.field == "central" else None
  _, x = select_channel(image, config.channel, config.sigma, config.nbins, field)
  inside = x if field is None else x[field]
  if inside.max() <= inside.min():
    return np.zeros(x.shape, np.int32)
  return (x > otsu_threshold(inside, config.nbins)).astype(np.int32)


def chan_vese_labels(image: np.ndarray,
                     config: ChanVeseConfig = ChanVeseConfig()) -> np.ndarray:
  """Two-phase Chan-Vese (`skimage.segmentation.chan_vese`) on one smoothed channel.

  2D only: scikit-image's Chan-Vese is 2D, so a 3D image `[D, H, W, C]` raises
  ValueError. The region {phi > 0} is relabelled so that 1 = the side with the higher
  mean of the chosen smoothed channel (`bright_is_one`). Run time at 192x256: ~6 ms per
  iteration, ~0.5-0.75 s on PH2 images (the `tol=1e-3` stop), at most ~1.2 s with the
  default `max_num_iter=200`.

  Args:
    image: `[H, W, C]` float in [0, 1].
    config: `ChanVeseConfig`.

  Returns:
    `[H, W]` int32 in {0, 1}.
  """
  image = np.asarray(image)
  if image.ndim != 3:
    raise ValueError(f"chan_vese_labels supports 2D images [H, W, C] only, got shape "
                     f"{image.shape}")
  field = central_field(image.shape[:-1]) if config.field == "central" else None
  _, x = select_channel(image, config.channel, config.sigma, field=field)
  if x.max() <= x.min():
    return np.zeros(x.shape, np.int32)
  seg = segmentation.chan_vese(
      x, mu=config.mu, lambda1=config.lambda1, lambda2=config.lambda2, tol=config.tol,
      max_num_iter=config.max_num_iter, dt=config.dt,
      init_level_set=config.init_level_set)
  return bright_is_one(seg, x)


# registered, in this order, by `sgscn_jax.builtin_methods`
METHODS = (
    Method(name="otsu", title="Otsu", core=otsu_labels, default_config=OtsuConfig(),
           quick_config=OtsuConfig(), host=True,
           description="Otsu threshold of the most bimodal smoothed channel or PC1 (no network)"),
    Method(name="otsu_blue", title="Otsu (blue)", core=otsu_labels,
           default_config=OtsuConfig(channel="2", field="all"),
           quick_config=OtsuConfig(channel="2", field="all"), host=True,
           description="Otsu threshold of the smoothed blue channel: the dermoscopy pipeline of "
           "REFERENCE.md section 4 (a data-set prior: lesions show most in blue)"),
    Method(name="chan_vese", title="Chan-Vese", core=chan_vese_labels,
           default_config=ChanVeseConfig(), quick_config=ChanVeseConfig(max_num_iter=20),
           host=True,
           description="two-phase Chan-Vese active contour without edges on the chosen channel"),
)
