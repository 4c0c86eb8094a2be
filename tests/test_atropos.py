"""Atropos as a registered host baseline (`baselines.atropos`): its labels against a direct
`ants.atropos` call; skipped only where antspyx (the extra `atropos`) is absent."""

import numpy as np
import pytest

from sgscn_jax import get_method, parse_method
from sgscn_jax.baselines import atropos


def two_tissue_volume(seed=0, shape=(12, 24, 24)):
  """A head-like volume: an ellipsoid of two tissues (0.5 outer shell, 0.8 core) in air
  (0.05), noise 0.03: returns `(volume [D, H, W, 1], head, core)`."""
  rng = np.random.default_rng(seed)
  grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
  r = np.sqrt(sum((g / (0.45 * n)) ** 2 for g, n in zip(grids, shape)))
  head, core = r < 1.0, r < 0.6
  v = np.where(core, 0.8, np.where(head, 0.5, 0.05)) + rng.normal(0, 0.03, shape)
  return v[..., None].astype(np.float32), head, core


def test_config_and_grammar():
  spec = parse_method("atropos:2,mrf=0.1,initialisation=otsu,radius=2")
  assert spec.config() == atropos.AtroposConfig(k=2, mrf=0.1, initialisation="otsu", radius=2)
  assert atropos.atropos_arguments(spec.config(), 3) == {
      "i": "Otsu[2]", "m": "[0.1,2x2x2]", "c": "[5,0]"}
  assert atropos.atropos_arguments(atropos.AtroposConfig(), 2)["m"] == "[0.3,1x1]"
  with pytest.raises(ValueError):
    atropos.AtroposConfig(initialisation="random")
  assert get_method("atropos").kind == "host"


def test_labels_equal_a_direct_atropos_call(tmp_path):
  ants = pytest.importorskip("ants")
  volume, head, core = two_tissue_volume()
  spacing = (2.5, 0.8, 0.8)
  config = atropos.AtroposConfig(k=2, mrf=0.3, iterations=3)
  seg = get_method("atropos").segment_one(None, volume, config, spacing=spacing, mask=head)
  direct = ants.atropos(a=ants.from_numpy(volume[..., 0], spacing=spacing),
                        x=ants.from_numpy(head.astype(np.float32), spacing=spacing),
                        i="kmeans[2]", m="[0.3,1x1x1]", c="[3,0]")
  expected = direct["segmentation"].numpy().astype(np.int32)
  np.testing.assert_array_equal(np.asarray(seg.labels), expected)
  assert int(seg.n_labels) == 3                       # 0 outside, 1 shell, 2 core
  assert np.mean((np.asarray(seg.labels) == 2) == core) > 0.99


def test_foreground_mask_by_default_and_2d():
  pytest.importorskip("ants")
  volume, head, core = two_tissue_volume(1)
  labels = atropos.label_image(volume, atropos.AtroposConfig(k=2, iterations=2))
  assert np.mean((labels > 0) == head) > 0.98         # the mask found from the volume
  assert np.mean((labels == 2) == core) > 0.98
  whole = atropos.label_image(volume, atropos.AtroposConfig(k=3, foreground=False,
                                                            iterations=2))
  assert whole.min() == 1 and whole.max() == 3        # every voxel clustered
  image = volume[6]                                   # a 2D slice [H, W, 1]
  labels2d = atropos.label_image(image, atropos.AtroposConfig(k=2, iterations=2))
  assert labels2d.shape == image.shape[:2]
  assert np.mean((labels2d == 2) == core[6]) > 0.97
