"""De-speckling: smoothing an ultrasound image's speckle before a method clusters it.

    work = despeckle(work, "nlm")      # [H, W, C] float in [0, 1] -> same shape and range

Speckle is multiplicative interference noise; clustering a raw B-mode image splits every
tissue into bright and dark grains. The filters (host side, at the working size, channel
by channel):

* "none": the image as it is (the paper);
* "median": a `median_size` x `median_size` median (scipy.ndimage);
* "nlm": non-local means (scikit-image `denoise_nl_means`, fast mode, 5x5 patches searched
  within 6 px), h = `nlm_strength` * sigma, sigma the noise level estimated per image as
  1.4826 * MAD of the image minus its 7x7 median (`noise_sigma`: speckle grains span
  several pixels, so a 3x3 residual misses most of it; a robust estimate that needs no
  wavelet package);
* "bilateral": scikit-image's bilateral filter (sigma_color 0.1, sigma_spatial 3 px).

Which pays is measured per method (docs/ULTRASOUND.md); a departure from the paper, which
feeds the raw image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METHODS = ("none", "median", "nlm", "bilateral")


def noise_sigma(x: np.ndarray, size: int = 7) -> float:
  """Robust noise level of a 2D image: 1.4826 * MAD of `x - median_size(x)`."""
  residual = x - ndimage.median_filter(x, size)
  return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def _filter_2d(x: np.ndarray, method: str, median_size: int, nlm_strength: float) -> np.ndarray:
  if method == "median":
    return ndimage.median_filter(x, median_size)
  if method == "nlm":
    from skimage.restoration import denoise_nl_means
    sigma = max(noise_sigma(x), 1e-3)
    return denoise_nl_means(x, h=nlm_strength * sigma, sigma=sigma, patch_size=5,
                            patch_distance=6, fast_mode=True)
  if method == "bilateral":
    from skimage.restoration import denoise_bilateral
    return denoise_bilateral(x, sigma_color=0.1, sigma_spatial=3)
  raise ValueError(f"despeckle must be one of {METHODS}, got {method!r}")


def despeckle(image: np.ndarray, method: str = "nlm", *, median_size: int = 5,
              nlm_strength: float = 1.5) -> np.ndarray:
  """`image` `[H, W, C]` (or `[H, W]`) in [0, 1], each channel filtered by `method`
  (module docstring); float32, clipped to [0, 1]."""
  if method not in METHODS:
    raise ValueError(f"despeckle must be one of {METHODS}, got {method!r}")
  image = np.asarray(image, np.float32)
  if method == "none":
    return image
  if image.ndim == 2:
    out = _filter_2d(image.astype(np.float64), method, median_size, nlm_strength)
  else:
    out = np.stack([_filter_2d(image[..., c].astype(np.float64), method, median_size,
                               nlm_strength) for c in range(image.shape[-1])], -1)
  return np.clip(out, 0.0, 1.0).astype(np.float32)
