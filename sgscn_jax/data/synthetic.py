"""Synthetic dermoscopy-like images with known ground truth: the project's built-in data.

Nothing is shipped as a file: every image is drawn in NumPy from a seed, so the examples,
the tests and a first run on a new machine need no download and no third-party data.

A lesion image is built in five layers (all arrays `[H, W]` or `[H, W, 3]`, float):

1. **Shape.** In polar coordinates `(rho, theta)` around a centre moved off the image
   centre by up to 12 % of the size, after an elliptical stretch of random axis ratio and
   angle, the lesion is `rho < r(theta)` with a radial Fourier contour

   `r(theta) = R0 * (1 + sum_{k=2..6} a_k cos(k theta + phi_k))`,
   `a_k ~ U(0, 0.22 / k)`, `R0 ~ U(0.2, 0.32) * min(H, W)`.

   The ground-truth mask is exactly that set: `mask = rho < r(theta)`.
2. **Skin.** A pinkish-beige colour with low-frequency shading (smooth value noise,
   +-6 %) and a faint linear illumination gradient.
3. **Lesion.** A brown colour, darker towards the centre, with internal texture (smooth
   noise, +-12 % intensity and a little hue shift) and a few pale "regression" patches
   inside, blended into the skin through a soft edge:
   `w = sigmoid((r(theta) - rho) / edge_px)`, `edge_px ~ U(0.6, 1.8)` pixels, so the
   border is a few pixels of mixed colour, as in a real dermoscopy image.
4. **Hairs** (optional, off by default): thin dark quadratic Bezier curves crossing the
   image, drawn over skin and lesion alike; they are *not* part of the mask.
5. **Optics.** A vignette `v = 1 - s * smoothstep(0.85, 1.5, d)`, with `d` the distance
   to the image centre over half the short side and `s ~ U(0.3, 0.55)`, darkens the
   corners as the dermatoscope's round field of view does; then Gaussian pixel noise
   (sigma 0.015) and clipping to `[0, 1]`.

The lesion is separable by colour, but not trivially: the soft edge, the texture, the
pale patches and the dark corners keep a k-means on colour from scoring a perfect DSC
(about 0.8-0.95 for k = 3 with the largest-overlap cluster).

Determinism: every random number comes from one `numpy.random.Generator` seeded with
`seed` and drawn in a fixed order, so one seed gives the same bytes on one machine and
NumPy version. A 128 x 128 image takes a few milliseconds.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

Seed = Union[int, Sequence[int]]

# Reference colours (linear RGB in [0, 1]), close to the means of PH2 skin and lesions.
_SKIN_RGB = np.array([0.84, 0.66, 0.62])
_LESION_RGB = np.array([0.52, 0.29, 0.22])
_HAIR_RGB = np.array([0.16, 0.11, 0.09])


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
  """Cubic Hermite step: 0 below `edge0`, 1 above `edge1`, `3t^2 - 2t^3` between."""
  t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def _value_noise(rng: np.random.Generator, shape: Tuple[int, int], cells: int,
                 octaves: int = 1) -> np.ndarray:
  """Smooth random field with zero mean and unit standard deviation.

  Each octave draws a `[cells * 2^o + 1] x [cells * 2^o + 1]` grid of N(0, 1) values and
  interpolates it to `shape` with smoothstep weights (value noise); octave `o` has
  amplitude `2^-o`. The feature size is about `min(H, W) / cells` pixels.

  Args:
    rng: the generator to draw from.
    shape: `(H, W)` of the output.
    cells: number of grid cells along each side of the first octave.
    octaves: number of octaves summed.

  Returns:
    float64 array `[H, W]`, standardised.
  """
  h, w = shape
  total = np.zeros(shape)
  for o in range(octaves):
    n = cells * 2**o
    grid = rng.standard_normal((n + 1, n + 1))
    y = np.linspace(0.0, n, h, endpoint=False) + 0.5 * n / h
    x = np.linspace(0.0, n, w, endpoint=False) + 0.5 * n / w
    y0 = np.minimum(y.astype(int), n - 1)
    x0 = np.minimum(x.astype(int), n - 1)
    ty = _smoothstep(0.0, 1.0, y - y0)[:, None]
    tx = _smoothstep(0.0, 1.0, x - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    top = g00 + (g01 - g00) * tx
    bottom = g10 + (g11 - g10) * tx
    total += (top + (bottom - top) * ty) * 0.5**o
  return (total - total.mean()) / (total.std() + 1e-12)


def _draw_hairs(rng: np.random.Generator, shape: Tuple[int, int],
                n_hairs: int) -> np.ndarray:
  """Coverage `[H, W]` in [0, 1] of `n_hairs` thin curves crossing the image.

  Each hair is a quadratic Bezier curve `B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2` from
  one side of the image to another, sampled every ~0.35 pixel and splatted with a
  bilinear kernel; widths are 1-2 pixels.
  """
  h, w = shape
  cover = np.zeros(shape)
  size = float(max(h, w))
  for _ in range(n_hairs):
    a, b = rng.uniform(0.0, 1.0, 2)
    if rng.random() < 0.5:  # Left to right.
      p0 = np.array([a * h, -0.05 * w])
      p2 = np.array([b * h, 1.05 * w])
    else:  # Top to bottom.
      p0 = np.array([-0.05 * h, a * w])
      p2 = np.array([1.05 * h, b * w])
    p1 = 0.5 * (p0 + p2) + rng.normal(0.0, 0.2 * size, 2)
    width = rng.uniform(0.6, 1.3)
    darkness = rng.uniform(0.6, 0.95)
    t = np.linspace(0.0, 1.0, int(4 * size))[:, None]
    pts = (1 - t)**2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2  # [n, 2] as (y, x).
    tangent = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    normal = np.concatenate([-tangent[:, 1:], tangent[:, :1]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    layer = np.zeros((h + 2, w + 2))
    for off in (-0.5 * width, 0.0, 0.5 * width):
      # Offsets across the direction of travel give the hair its width.
      p = pts + off * normal + 0.5  # +1 for the one-pixel pad, -0.5 to pixel centres.
      i0 = np.floor(p).astype(int)
      f = p - i0
      keep = (i0[:, 0] >= 0) & (i0[:, 0] < h + 1) & (i0[:, 1] >= 0) & (i0[:, 1] < w + 1)
      i0, f = i0[keep], f[keep]
      for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        wgt = (f[:, 0] if dy else 1 - f[:, 0]) * (f[:, 1] if dx else 1 - f[:, 1])
        np.maximum.at(layer, (i0[:, 0] + dy, i0[:, 1] + dx), wgt)
    cover = np.maximum(cover, darkness * np.clip(layer[1:-1, 1:-1] * 1.4, 0.0, 1.0))
  return cover


def lesion_image(seed: Seed, shape: Tuple[int, int] = (128, 128), *,
                 hairs: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """A synthetic dermoscopy image of one pigmented lesion, and its ground truth.

  See the module docstring for the model. The same `seed` (an int, or a sequence of ints
  as accepted by `numpy.random.default_rng`) always gives the same image and mask.

  Args:
    seed: seed of the image's random generator.
    shape: `(H, W)` in pixels; at least 16 x 16.
    hairs: number of hairs drawn over the image (0 = none, the default; 3-8 looks like
      a moderately hairy PH2 case). Hairs are not part of the mask.

  Returns:
    `(image, mask)`: image float32 `[H, W, 3]` in `[0, 1]`; mask bool `[H, W]`, True
    on the lesion.
  """
  h, w = (int(s) for s in shape)
  if h < 16 or w < 16:
    raise ValueError(f"shape must be at least (16, 16), got {shape}")
  rng = np.random.default_rng(seed)
  # Drawn first and always, so that `hairs` changes nothing but the hairs.
  hair_seed = rng.integers(0, 2**63)
  short = float(min(h, w))

  # 1. Shape: radial Fourier contour around an off-centre point, elliptically stretched.
  cy = 0.5 * h + rng.uniform(-0.12, 0.12) * h
  cx = 0.5 * w + rng.uniform(-0.12, 0.12) * w
  radius = rng.uniform(0.2, 0.32) * short
  ks = np.arange(2, 7)
  amps = rng.uniform(0.0, 0.22 / ks)
  phases = rng.uniform(0.0, 2 * np.pi, ks.size)
  stretch = rng.uniform(0.75, 1.0)
  angle = rng.uniform(0.0, np.pi)
  yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
  dy, dx = yy - cy, xx - cx
  u = dx * np.cos(angle) + dy * np.sin(angle)
  v = (-dx * np.sin(angle) + dy * np.cos(angle)) / stretch
  rho = np.hypot(u, v)
  theta = np.arctan2(v, u)
  r_theta = radius * (1.0 + np.sum(
      amps[:, None, None] * np.cos(ks[:, None, None] * theta + phases[:, None, None]),
      axis=0))
  mask = rho < r_theta

  # 2. Skin: base colour, low-frequency shading and a faint illumination gradient.
  skin_rgb = _SKIN_RGB * rng.uniform(0.93, 1.05) + rng.uniform(-0.03, 0.03, 3)
  shading = 1.0 + 0.06 * _value_noise(rng, (h, w), cells=3, octaves=2)
  g = rng.normal(0.0, 1.0, 2)
  gradient = 1.0 + 0.05 * ((yy / h - 0.5) * g[0] + (xx / w - 0.5) * g[1])
  skin = skin_rgb[None, None, :] * (shading * gradient)[..., None]

  # 3. Lesion: brown, darker core, textured, with pale patches, soft-edged.
  lesion_rgb = _LESION_RGB * rng.uniform(0.8, 1.15) + rng.uniform(-0.02, 0.02, 3)
  depth = np.clip(1.0 - rho / np.maximum(r_theta, 1e-6), 0.0, 1.0)  # 1 at the centre.
  core = 1.0 - rng.uniform(0.2, 0.45) * _smoothstep(0.0, 0.8, depth)
  texture = 1.0 + 0.12 * _value_noise(rng, (h, w), cells=8, octaves=3)
  hue = 0.04 * _value_noise(rng, (h, w), cells=5)
  pale_field = _value_noise(rng, (h, w), cells=4)
  pale = rng.uniform(0.15, 0.35) * _smoothstep(0.9, 1.6, pale_field)
  lesion = lesion_rgb[None, None, :] * (core * texture)[..., None]
  lesion = lesion + hue[..., None] * np.array([0.6, 0.05, -0.4])  # red <-> blue-grey.
  lesion = lesion + pale[..., None] * (skin - lesion) * 0.8
  edge_px = rng.uniform(0.6, 1.8)
  weight = 1.0 / (1.0 + np.exp(-(r_theta - rho) / edge_px))
  image = skin + weight[..., None] * (lesion - skin)

  # 4. Hairs (optional), from their own generator.
  if hairs > 0:
    cover = _draw_hairs(np.random.default_rng(hair_seed), (h, w), int(hairs))
    image = image + cover[..., None] * (_HAIR_RGB[None, None, :] - image)

  # 5. Optics: vignette, then pixel noise.
  d = np.hypot(yy - 0.5 * h, xx - 0.5 * w) / (0.5 * short)
  vignette = 1.0 - rng.uniform(0.3, 0.55) * _smoothstep(0.85, 1.5, d)
  image = image * vignette[..., None]
  image = image + rng.normal(0.0, 0.015, image.shape)
  return np.clip(image, 0.0, 1.0).astype(np.float32), mask


def two_region_image(shape: Tuple[int, int] = (32, 32),
                     seed: Seed = 0) -> Tuple[np.ndarray, np.ndarray]:
  """A trivially separable test image: a reddish disc on a bluish background.

  The disc has radius `0.3 * min(H, W)`, its centre is moved from the image centre by up
  to 10 % of the size; colours are (0.85, 0.25, 0.2) inside and (0.2, 0.35, 0.8)
  outside, plus N(0, 0.02^2) pixel noise, clipped to `[0, 1]`. The colour distance
  between the regions (~0.9) is about 45 noise standard deviations, so any sensible
  clustering recovers the mask exactly.

  Args:
    shape: `(H, W)`, at least 8 x 8.
    seed: seed of the generator.

  Returns:
    `(image, mask)`: float32 `[H, W, 3]` in `[0, 1]`, bool `[H, W]` (True on the disc).
  """
  h, w = (int(s) for s in shape)
  if h < 8 or w < 8:
    raise ValueError(f"shape must be at least (8, 8), got {shape}")
  rng = np.random.default_rng(seed)
  cy = 0.5 * h + rng.uniform(-0.1, 0.1) * h
  cx = 0.5 * w + rng.uniform(-0.1, 0.1) * w
  yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
  mask = np.hypot(yy - cy, xx - cx) < 0.3 * min(h, w)
  inside = np.array([0.85, 0.25, 0.2])
  outside = np.array([0.2, 0.35, 0.8])
  image = np.where(mask[..., None], inside, outside)
  image = image + rng.normal(0.0, 0.02, image.shape)
  return np.clip(image, 0.0, 1.0).astype(np.float32), mask
