"""Entry points for methods that run on the host (NumPy, scikit-image), not under `jax.jit`.

A host method is `label_image(image, config) -> labels` for ONE image `[*spatial, C_in]`
(NumPy float32) returning an integer label map `[*spatial]`; no key (the classical methods
are deterministic; a key is accepted and ignored so that every method is called alike). A
host method fitted on a data set (`registry.Method.fit`) is `label_image(image, config,
state) -> labels`: the runner passes the fitted `state`, which is handed on.
`HostEntryPoints` gives it the `segment_one` / `segment_batch` of the jitted methods
(`core.batching.EntryPoints`): the same input checks, the same `Segmentation` result
(labels renumbered 0..K-1; `iterations` 0; no loss history), images one after the other.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sgscn_jax.core.loop import Segmentation, check_image

HostCore = Callable[[np.ndarray, object], np.ndarray]


def renumbered(labels: np.ndarray) -> tuple[np.ndarray, int]:
  """Labels mapped to 0..K-1 in the order of their values; returns `(labels, K)`."""
  values, inverse = np.unique(np.asarray(labels), return_inverse=True)
  return inverse.reshape(np.shape(labels)).astype(np.int32), int(values.size)


class HostEntryPoints:
  """`segment_one` / `segment_batch` of a host method (see the module docstring)."""

  def __init__(self, core: HostCore, config_type: type):
    self.core, self.config_type = core, config_type

  def _check_config(self, config) -> None:
    if not isinstance(config, self.config_type):
      raise TypeError(f"expected a {self.config_type.__name__}, got {type(config).__name__}")

  def segment_one(self, key, image, config, state=None, **unused) -> Segmentation:
    del key, unused
    self._check_config(config)
    check_image(image)
    image = np.asarray(image, np.float32)
    labels = self.core(image, config) if state is None else self.core(image, config, state)
    labels, k = renumbered(labels)
    if labels.shape != np.shape(image)[:-1]:
      raise ValueError(f"host method returned labels {labels.shape} for image {np.shape(image)}")
    return Segmentation(labels, np.int32(k), np.int32(0), np.bool_(True), None)

  def segment_batch(self, keys, images, config, state=None, **unused) -> Segmentation:
    """Each image of `images` `[B, *spatial, C_in]` in turn; `keys` `[B]` are ignored;
    `state` (a data-set method's fitted state) goes to every image's call."""
    del unused
    self._check_config(config)
    if np.ndim(images) < 1 or len(keys) != np.shape(images)[0]:
      raise ValueError(f"keys: expected {np.shape(images)[0]} keys (one per image), "
                       f"got {len(keys)}")
    results = [self.segment_one(None, images[b], config, state)
               for b in range(np.shape(images)[0])]
    return Segmentation(np.stack([r.labels for r in results]),
                        np.stack([r.n_labels for r in results]),
                        np.stack([r.iterations for r in results]),
                        np.stack([r.finite for r in results]), None)
