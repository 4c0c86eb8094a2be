"""The public face (STYLE.md 13): each subpackage's `__init__` re-exports its public names
with `__all__`, every listed name exists, and no re-export hides a module of the package."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import sgscn_jax

SUBPACKAGES = ("core", "volume", "data", "data.datasets", "evaluation", "registry", "baselines",
               "cuts", "jule", "distil", "running", "reporting")


@pytest.mark.parametrize("name", ("",) + SUBPACKAGES)
def test_every_public_name_exists_and_no_module_is_hidden(name):
  package = importlib.import_module("sgscn_jax" + (f".{name}" if name else ""))
  public = package.__all__
  assert len(public) == len(set(public)), "a name is listed twice"
  missing = [n for n in public if not hasattr(package, n)]
  assert not missing, f"{package.__name__}.__all__ lists names it does not define: {missing}"
  # `from sgscn_jax.cuts import fit` must stay the module even though `cuts.method.fit` exists
  for info in pkgutil.iter_modules(package.__path__):
    module = importlib.import_module(f"{package.__name__}.{info.name}")
    assert getattr(package, info.name) is module, (
        f"{package.__name__}.{info.name} is not the module {module.__name__}: a re-export "
        "hides it")


def test_star_import_gives_the_listed_names():
  namespace: dict = {}
  exec("from sgscn_jax.evaluation import *", namespace)  # noqa: S102
  assert {"ObjectConfig", "extract_object", "dice"} <= set(namespace)
  assert "np" not in namespace and "objects" not in namespace


def test_the_public_names_are_the_defining_modules_objects():
  from sgscn_jax.core import batching
  from sgscn_jax.evaluation import objects
  assert sgscn_jax.core.segment_one is batching.segment_one is sgscn_jax.segment_one
  assert sgscn_jax.evaluation.extract_object is objects.extract_object
  assert sgscn_jax.data.Case is sgscn_jax.data.datasets.Case
