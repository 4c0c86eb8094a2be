"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np
import pytest

# Strict shapes in every test: implicit rank promotion (a silent broadcast of arrays of
# different ranks) is an error, as equinox's test setup does.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def shared_data() -> Path:
  """The shared real-data folder (`../shared/data` beside the repository).

  Overridable with the environment variable SGSCN_SHARED_DATA; tests that use it are
  skipped when the folder is absent, as on a user's machine.
  """
  default = Path(__file__).resolve().parents[2] / "shared" / "data"
  path = Path(os.environ.get("SGSCN_SHARED_DATA", default))
  if not path.is_dir():
    pytest.skip(f"shared data folder {path} absent")
  return path


def write_lesion_folder(root: Path, n: int = 3, shape=(24, 32)):
  """`n` synthetic lesion images and masks as PNG under `root/images` and `root/masks`
  (case0, case1, ...); returns the folder data set's cases."""
  from sgscn_jax.data import synthetic
  from sgscn_jax.data.datasets import folder
  (root / "images").mkdir(parents=True)
  (root / "masks").mkdir()
  for i in range(n):
    image, mask = synthetic.lesion_image(i, shape)
    iio.imwrite(root / "images" / f"case{i}.png", (image * 255).astype(np.uint8))
    iio.imwrite(root / "masks" / f"case{i}.png", mask.astype(np.uint8) * 255)
  return folder.list_cases(root, images_dir=root / "images", masks_dir=root / "masks")
