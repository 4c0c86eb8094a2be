"""Shared pytest fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np
import pytest

# Strict shapes in every test: implicit rank promotion (a silent broadcast of arrays of
# different ranks) is an error, as equinox's test setup does.
jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent compilation cache for the whole test session, this process and every
# command-line run it starts (they inherit the environment): many tests compile the same
# programs (the same tiny configurations and shapes) in fresh processes, and reading a
# compiled program back costs a fraction of compiling it. A fresh folder per session, removed
# at exit, so nothing carries over between sessions.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="sgscn-jax-test-cache-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")))


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
