"""Which scalar channel of an image shows the object: candidates, bimodality, the central field.

Shared by the classical baselines (`baselines.classical`: Otsu, Chan-Vese) and the mask-free
object step (`evaluation.objects`), so that both read the same channel by the same rule:
the candidate (each channel, and PC1 of the colours) whose smoothed values are the most
bimodal (Otsu's separability eta) inside the central field, the ellipse inscribed in the
image, which keeps dark vignette corners (dermoscopy, endoscopy) from deciding it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import filters

FIELDS = ("central", "all")


def central_field(spatial_shape) -> np.ndarray:
  """`[*spatial]` bool: the ellipse (ellipsoid) inscribed in the image, pixel centres
  `sum_a ((i_a + 0.5 - n_a / 2) / (n_a / 2))^2 <= 1`."""
  squared = 0.0
  for axis, n in enumerate(spatial_shape):
    u = (np.arange(n) + 0.5 - n / 2) / (n / 2)
    squared = squared + (u ** 2).reshape([-1 if a == axis else 1
                                          for a in range(len(spatial_shape))])
  return np.broadcast_to(squared <= 1.0, tuple(spatial_shape))


def _rescale01(x: np.ndarray) -> np.ndarray:
  """(x - min) / (max - min) as float64; zeros for a constant array."""
  x = np.asarray(x, np.float64)
  lo, hi = x.min(), x.max()
  if hi <= lo:
    return np.zeros_like(x)
  return (x - lo) / (hi - lo)


def first_principal_component(image: np.ndarray) -> np.ndarray:
  """PC1 of the pixel colours, rescaled to [0, 1].

  With X the pixels `[P, C]`, mean m and covariance S = (X - m)^T (X - m) / P, the
  loading v is S's unit eigenvector of the largest eigenvalue, its sign fixed so that
  sum_c v_c > 0 (if sum_c v_c == 0: its largest-|.| entry, the first on ties, > 0).
  The score (X - m) v is min-max rescaled to [0, 1] (zeros if constant).

  Args:
    image: `[*spatial, C]` float.

  Returns:
    `[*spatial]` float64 in [0, 1].
  """
  x = np.asarray(image, np.float64).reshape(-1, image.shape[-1])
  x = x - x.mean(axis=0)
  cov = x.T @ x / max(x.shape[0], 1)
  _, vecs = np.linalg.eigh(cov)           # ascending eigenvalues
  v = vecs[:, -1]
  s = v.sum()
  if abs(s) > 1e-12:
    v = v * np.sign(s)
  else:
    v = v * np.sign(v[np.argmax(np.abs(v))])
  return _rescale01((x @ v).reshape(image.shape[:-1]))


def candidate_channels(image: np.ndarray) -> dict[str, np.ndarray]:
  """The scalar channels a two-phase method may use, in the tie-break order.

  Args:
    image: `[*spatial, C]` float in [0, 1], channels last.

  Returns:
    {"0": image[..., 0], ..., str(C-1): image[..., C-1], "pc1": PC1 (only when C > 1)},
    each `[*spatial]` float64; "pc1" is `first_principal_component(image)`.
  """
  image = np.asarray(image)
  if image.ndim < 2:
    raise ValueError(f"image must be [*spatial, C], got shape {image.shape}")
  out = {str(c): image[..., c].astype(np.float64) for c in range(image.shape[-1])}
  if image.shape[-1] > 1:
    out["pc1"] = first_principal_component(image)
  return out


def otsu_threshold(values: np.ndarray, nbins: int = 256) -> float:
  """`skimage.filters.threshold_otsu` of the values (split: <= t | > t)."""
  return float(filters.threshold_otsu(np.asarray(values, np.float64).ravel(), nbins=nbins))


def bimodality(values: np.ndarray, nbins: int = 256) -> float:
  """Otsu's separability eta of the values at scikit-image's Otsu threshold t*.

  With classes A = {v <= t*} and B = {v > t*}, weights w_A = |A| / N, w_B = |B| / N and
  means m_A, m_B (all over the N values themselves, not the histogram):

      sigma_B^2 = w_A w_B (m_A - m_B)^2        (between-class variance)
      sigma_T^2 = mean((v - mean(v))^2)        (total variance)
      eta       = sigma_B^2 / sigma_T^2        in [0, 1]

  eta = 1 for exactly two levels, 0 for constant values (or an empty class).

  Args:
    values: any shape, float.
    nbins: histogram bins of `threshold_otsu`.

  Returns:
    eta as a Python float.
  """
  v = np.asarray(values, np.float64).ravel()
  if v.size == 0 or v.max() <= v.min():
    return 0.0
  t = otsu_threshold(v, nbins)
  upper = v > t
  n_b = int(upper.sum())
  n_a = v.size - n_b
  if n_a == 0 or n_b == 0:
    return 0.0
  w_a, w_b = n_a / v.size, n_b / v.size
  between = w_a * w_b * (v[~upper].mean() - v[upper].mean()) ** 2
  total = v.var()
  if total <= 0:
    return 0.0
  return float(min(max(between / total, 0.0), 1.0))


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
  """Isotropic Gaussian (std `sigma` pixels, edges replicated); identity for 0."""
  if sigma <= 0:
    return np.asarray(x, np.float64)
  return ndimage.gaussian_filter(np.asarray(x, np.float64), sigma, mode="nearest")


def most_bimodal_channel(image: np.ndarray, sigma: float, nbins: int = 256,
                         field: np.ndarray | None = None) -> tuple[str, np.ndarray]:
  """The smoothed candidate channel with the largest `bimodality`.

  Args:
    image: `[*spatial, C]` float in [0, 1].
    sigma: Gaussian smoothing (pixels) applied to every candidate before scoring.
    nbins: histogram bins of the Otsu threshold.
    field: optional `[*spatial]` bool: bimodality is measured on these pixels only.

  Returns:
    (name, smoothed channel `[*spatial]` float64); ties go to the first candidate in the
    order "0", "1", ..., "pc1".
  """
  best_name, best_x, best_eta = None, None, -1.0
  for name, x in candidate_channels(image).items():
    xs = smooth(x, sigma)
    eta = bimodality(xs if field is None else xs[field], nbins)
    if eta > best_eta:
      best_name, best_x, best_eta = name, xs, eta
  return best_name, best_x


def select_channel(image: np.ndarray, channel: str, sigma: float,
                   nbins: int = 256, field: np.ndarray | None = None) -> tuple[str, np.ndarray]:
  """The named (or, for "auto", the most bimodal) candidate channel, smoothed.

  Returns:
    (name, `[*spatial]` float64). Raises ValueError for a name that is not a candidate.
  """
  if channel == "auto":
    return most_bimodal_channel(image, sigma, nbins, field)
  candidates = candidate_channels(image)
  if channel.isdigit() and np.shape(image)[-1] == 1:
    channel = "0"  # a grey image (read from R = G = B, or grey): every colour channel is it
  if channel not in candidates:
    raise ValueError(f"channel {channel!r} not among {list(candidates)} for image shape "
                     f"{np.shape(image)}")
  return channel, smooth(candidates[channel], sigma)
