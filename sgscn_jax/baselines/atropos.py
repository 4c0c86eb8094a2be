"""ANTs Atropos (Avants et al., Neuroinformatics 2011): a Gaussian finite mixture of the
intensities fitted by EM, with a Markov random field prior on the labels, through antspyx
(`ants.atropos`): the classical tissue segmenter of brain MRI, registered as a host
baseline for volumes and 2D images.

    labels = label_image(image, AtroposConfig(k=3, mrf=0.3), spacing=s, mask=m)
    # image [*spatial, C]; labels [*spatial] int32: 0 outside the mask, 1..k inside

One call of Atropos with

    a = the image's channels (a list of images when C > 1: a multivariate mixture),
        at the voxel `spacing` (the MRF's neighbours are weighted by physical distance),
    x = the mask: the one given (a data set's own, e.g. nilearn's MNI152 brain mask), else
        `data.foreground.foreground_mask` of the image when `foreground` (Otsu, largest
        component, holes filled), else every voxel,
    i = `KMeans[k]` or `Otsu[k]` (`initialisation`),
    m = `[mrf, r x r (x r)]` (`mrf` the smoothing factor beta, `radius` r voxels),
    c = `[iterations, convergence]` (0: run every iteration).

Atropos orders the classes by mean intensity of the first channel (1 the darkest); it is
deterministic for one input (tested: the labels equal a direct `ants.atropos` call). The
key is ignored. The optional extra `atropos` installs antspyx; `label_image` says how to
install it when it is absent. Atropos writes its posterior images to temporary files: they
are written to a private temporary folder, removed after the call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from typing import Optional, Sequence

import numpy as np

from sgscn_jax.core.host import HostEntryPoints
from sgscn_jax.core.loop import Segmentation
from sgscn_jax.data import foreground as foreground_lib
from sgscn_jax.registry import Method

INITIALISATIONS = ("kmeans", "otsu")


@dataclasses.dataclass(frozen=True)
class AtroposConfig:
  """Settings of Atropos (module docstring).

  Attributes:
    k: number of classes (MNI152 brain: 3, CSF, grey and white matter).
    initialisation: "kmeans" (Atropos' `KMeans[k]`) or "otsu" (`Otsu[k]`).
    mrf: the MRF smoothing factor beta (ANTs' default 0.3; 0: a mixture without prior).
    radius: the MRF neighbourhood's radius in voxels along every axis (ANTs' default 1).
    iterations: EM iterations (the issue's and antspyx's example: 5).
    convergence: Atropos' convergence threshold on the mean maximum posterior (0: run
      every iteration).
    foreground: cluster inside the foreground (the mask given, else
      `data.foreground.foreground_mask` of the image); False: every voxel.
  """
  k: int = 3
  initialisation: str = "kmeans"
  mrf: float = 0.3
  radius: int = 1
  iterations: int = 5
  convergence: float = 0.0
  foreground: bool = True

  def __post_init__(self):
    if self.k < 1:
      raise ValueError(f"k must be >= 1, got {self.k}")
    if self.initialisation not in INITIALISATIONS:
      raise ValueError(f"initialisation must be one of {INITIALISATIONS}, got "
                       f"{self.initialisation!r}")
    if self.mrf < 0 or self.radius < 1 or self.iterations < 1 or self.convergence < 0:
      raise ValueError("mrf and convergence must be >= 0, radius and iterations >= 1")


def _ants():
  try:
    import ants  # the optional extra 'atropos' (antspyx)
  except ImportError:
    raise ImportError("the atropos method needs antspyx: pip install 'sgscn-jax[atropos]' "
                      "(or pip install antspyx)") from None
  return ants


def atropos_arguments(config: AtroposConfig, rank: int) -> dict:
  """The `i`, `m`, `c` arguments of `ants.atropos` for an image of spatial rank `rank`."""
  init = {"kmeans": "KMeans", "otsu": "Otsu"}[config.initialisation]
  radius = "x".join([str(config.radius)] * rank)
  return {"i": f"{init}[{config.k}]", "m": f"[{config.mrf:g},{radius}]",
          "c": f"[{config.iterations},{config.convergence:g}]"}


@contextlib.contextmanager
def _private_tempdir():
  """`tempfile`'s default folder set to a fresh one for the block, then removed (Atropos'
  posterior images go there)."""
  previous = tempfile.tempdir
  with tempfile.TemporaryDirectory(prefix="sgscn_atropos_") as folder:
    tempfile.tempdir = folder
    try:
      yield folder
    finally:
      tempfile.tempdir = previous


def label_image(image: np.ndarray, config: AtroposConfig,
                spacing: Optional[Sequence[float]] = None,
                mask: Optional[np.ndarray] = None) -> np.ndarray:
  """Atropos on one image `[*spatial, C]` (2 or 3 spatial axes): labels `[*spatial]` int32,
  0 outside the mask, 1..k inside, darkest class first (module docstring)."""
  ants = _ants()
  image = np.asarray(image, np.float32)
  spatial = image.shape[:-1]
  rank = len(spatial)
  if rank not in (2, 3):
    raise ValueError(f"atropos needs a 2D or 3D image [*spatial, C], got {image.shape}")
  spacing = (1.0,) * rank if spacing is None else tuple(float(s) for s in spacing)
  if mask is None:
    mask = (foreground_lib.foreground_mask(image, spacing) if config.foreground
            else np.ones(spatial, bool))
  mask = np.asarray(mask, bool)
  if mask.shape != spatial:
    raise ValueError(f"mask {mask.shape} does not match the image's {spatial}")
  channels = [ants.from_numpy(np.ascontiguousarray(image[..., c]), spacing=spacing)
              for c in range(image.shape[-1])]
  a = channels[0] if len(channels) == 1 else channels
  x = ants.from_numpy(mask.astype(np.float32), spacing=spacing)
  with _private_tempdir():
    result = ants.atropos(a=a, x=x, **atropos_arguments(config, rank))
    labels = result["segmentation"].numpy()
  return np.rint(labels).astype(np.int32)


class AtroposEntryPoints(HostEntryPoints):
  """`HostEntryPoints` of Atropos that hand the voxel `spacing` and a `mask` (the data set's
  foreground) on to `label_image`."""

  def __init__(self, compiler_options=None):
    del compiler_options
    super().__init__(label_image, AtroposConfig)

  def segment_one(self, key, image, config, state=None, *, spacing=None, mask=None,
                  **unused):
    del state, unused
    core = lambda im, cfg: label_image(im, cfg, spacing, mask)  # noqa: E731
    return HostEntryPoints(core, AtroposConfig).segment_one(key, image, config)

  def segment_batch(self, keys, images, config, state=None, *, spacing=None, mask=None,
                    **unused):
    del state, unused
    self._check_config(config)
    if np.ndim(images) < 1 or len(keys) != np.shape(images)[0]:
      raise ValueError(f"keys: expected {np.shape(images)[0]} keys (one per image)")
    spacing = None if spacing is None else np.asarray(spacing, np.float64)
    runs = []
    for b in range(np.shape(images)[0]):
      s = None if spacing is None else (spacing[b] if spacing.ndim == 2 else spacing)
      m = None if mask is None else np.asarray(mask)[b]
      runs.append(self.segment_one(None, images[b], config, spacing=s, mask=m))
    return Segmentation(np.stack([r.labels for r in runs]),
                        np.stack([r.n_labels for r in runs]),
                        np.stack([r.iterations for r in runs]),
                        np.stack([r.finite for r in runs]), None)


# registered by `sgscn_jax.builtin_methods`
METHOD = Method(
    name="atropos", title="Atropos", core=label_image, default_config=AtroposConfig(),
    quick_config=AtroposConfig(iterations=1), spacing=True, host=True,
    make_entry_points=AtroposEntryPoints,
    description="ANTs Atropos: a Gaussian mixture with an MRF prior, k-means initialised "
                "(Avants et al. 2011; antspyx)")
