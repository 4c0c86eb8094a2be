"""The method registry: one registration, read by every runner; the documented example."""

import re
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from sgscn_jax import METHODS, get_method, method_names, registry
from sgscn_jax.data import synthetic
from sgscn_jax.running import comparison

DOC = Path(__file__).resolve().parents[1] / "docs" / "ADDING_A_METHOD.md"


def test_builtin_methods_are_registered_once_sgscn_first():
  names = method_names()
  assert names[0] == "sgscn"
  assert {"kmeans", "deepcluster", "iic", "otsu", "chan_vese"} <= set(names)
  assert len(set(names)) == len(names)
  assert get_method("kmeans").takes_k and not get_method("sgscn").takes_k
  assert get_method("otsu").host and not get_method("sgscn").host


def test_registries_are_read_only_views():
  with pytest.raises(TypeError):
    METHODS["x"] = None  # noqa
  from sgscn_jax import LOSS_TERMS
  with pytest.raises(TypeError):
    LOSS_TERMS["x"] = None  # noqa
  with pytest.raises(ValueError, match="already registered"):
    registry.register_method(get_method("kmeans"))
  with pytest.raises(ValueError, match="unknown method 'nope'; choose from sgscn"):
    get_method("nope")


def test_the_documented_example_registers_and_runs_everywhere():
  code = re.search(r"```python\n(# my_methods.py.*?)```", DOC.read_text(), re.S).group(1)
  module = types.ModuleType("my_methods")
  try:
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - the doc's own code
    m = get_method("position_kmeans")
    image, mask = synthetic.lesion_image(0, (32, 32))
    one = m.segment_one(jax.random.key(0), image)
    assert one.labels.shape == (32, 32) and 1 <= int(one.n_labels) <= 3
    batch = m.segment_batch(jax.random.split(jax.random.key(0), 2), np.stack([image, image]),
                            m.quick_config)
    assert batch.labels.shape == (2, 32, 32)
    specs = comparison.parse_methods("sgscn,position_kmeans:4")
    assert [str(s) for s in specs] == ["sgscn", "position_kmeans:4"]
    assert specs[1].method is m
    plan = comparison.plan(specs[1:], False, comparison.quick_configs())
    assert plan.table[0].slug == "position_kmeans_k4" and plan.table[0].config.k == 4
  finally:
    registry.unregister_method("position_kmeans")  # keep other tests' view of the registry


def test_host_methods_share_the_entry_point_contract():
  otsu = get_method("otsu")
  image, mask = synthetic.lesion_image(1, (40, 48))
  result = otsu.segment_batch(jax.random.split(jax.random.key(0), 2), np.stack([image, image]))
  labels = np.asarray(result.labels)
  assert labels.shape == (2, 40, 48) and set(np.unique(labels)) == {0, 1}
  assert result.history is None and list(result.n_labels) == [2, 2]
  np.testing.assert_array_equal(labels[0], labels[1])
  with pytest.raises(TypeError, match="OtsuConfig"):
    otsu.segment_one(None, image, get_method("kmeans").default_config)
  with pytest.raises(ValueError, match="non-finite"):
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    otsu.segment_one(None, bad, otsu.default_config)
