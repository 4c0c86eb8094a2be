"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
