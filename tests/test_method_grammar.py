"""The method grammar (`registry.parse_method`, docs/USAGE.md "Naming a method"): every form
parses to the config it names and back to text, older forms mean the same, and a bad spec,
option or fit folder stops each command before any work with one line and exit status 2."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from sgscn_jax import registry
from sgscn_jax.baselines.method_vote import VoteConfig
from sgscn_jax.registry import MethodSpec, MethodSpecError, parse_method, parse_methods


@pytest.mark.parametrize("text, slug", [
    ("sgscn", "sgscn"), ("otsu_blue", "otsu_blue"), ("kmeans", "kmeans_k3"),
    ("kmeans:5", "kmeans_k5"), ("kmeans:k=5", "kmeans_k5"),
    ("kmeans:5,iterations=7", "kmeans_k5_iterations-7"),
    ("kmeans:5:iterations=7", "kmeans_k5_iterations-7"),
    ("iic:k=4,steps=100", "iic_k4_steps-100"),
    ("sgscn:iterations=100,learning_rate=0.05", "sgscn_iterations-100_learning_rate-0.05"),
    ("vote:sgscn+kmeans:5+otsu_blue", "vote_sgscn+kmeans_k5+otsu_blue"),
    ("vote:kmeans:5,otsu_blue,chan_vese", "vote_kmeans_k5+otsu_blue+chan_vese"),
    ("vote:sgscn+iic:k=4,steps=50+otsu_blue", "vote_sgscn+iic_k4_steps-50+otsu_blue"),
])
def test_every_form_parses_and_reads_back(text, slug):
  spec = parse_method(text)
  assert spec.slug == slug
  assert parse_method(str(spec)) == spec          # the canonical text reads back
  spec.config()                                   # every field resolves


def test_fields_are_typed_as_the_config_says():
  config = parse_method("sgscn:iterations=100,learning_rate=0.05,early_stop=no").config()
  assert (config.iterations, config.learning_rate, config.early_stop) == (100, 0.05, False)
  assert parse_method("kmeans:5,iterations=7").config() == dataclasses.replace(
      registry.get_method("kmeans").default_config, k=5, iterations=7)
  base = {"sgscn": registry.get_method("sgscn").default_config.__class__(n_channels=16)}
  assert parse_method("sgscn:iterations=3").config(base).n_channels == 16  # the run's base
  assert parse_method("kmeans").config(quick=True) == registry.get_method("kmeans").quick_config


def test_a_vote_is_built_from_its_members():
  config = parse_method("vote:sgscn+kmeans:5+otsu_blue").config()
  assert isinstance(config, VoteConfig)
  assert [name for name, _ in config.members] == ["sgscn", "kmeans", "otsu_blue"]
  assert config.members[1][1].k == 5
  assert registry.get_method("vote").kind == "vote"
  assert registry.get_method("cuts").kind == "fitted"
  assert registry.get_method("otsu").kind == "host"
  assert registry.get_method("sgscn").kind == "jitted"


def test_lists_split_at_commas_that_start_a_method():
  specs = parse_methods("sgscn,iic:k=4,steps=100,kmeans:5,vote:sgscn+kmeans:5+otsu_blue")
  assert [str(s) for s in specs] == ["sgscn", "iic:k=4,steps=100", "kmeans:5",
                                     "vote:sgscn+kmeans:5+otsu_blue"]
  older = parse_methods("cuts,kmeans:5,vote:sgscn,kmeans:5,otsu_blue")   # vote comes last
  assert [s.slug for s in older] == ["cuts", "kmeans_k5", "vote_sgscn+kmeans_k5+otsu_blue"]
  assert parse_methods(["sgscn", "kmeans:3"]) == [MethodSpec("sgscn"),
                                                   MethodSpec("kmeans", (("k", "3"),))]


@pytest.mark.parametrize("text, says", [
    ("nosuch", "unknown method 'nosuch'"), ("kmeans:x", "neither a number"),
    ("otsu:3", "takes no number of clusters"), ("vote:kmeans:5", "at least 2"),
    ("vote:kmeans:5,nosuch", "unknown method 'nosuch'"),
    ("kmeans:5:foo=1", "unknown field 'foo'"), ("kmeans:k=abc", "is not a int"),
    ("sgscn:early_stop=maybe", "is not a bool"), ("vote:vote:a+b", "takes member methods"),
    ("kmeans:k=3,k=4", "set twice"), ("vote:kmeans:3+kmeans:3", "named twice"),
    ("sgscn:loss_weights=1", "cannot be set from text"),
])
def test_a_bad_spec_is_one_line_that_shows_the_accepted_forms(text, says):
  with pytest.raises(MethodSpecError, match=says) as info:
    parse_method(text)
  message = str(info.value)
  assert "\n" not in message and "accepted forms" in message and text in message
  with pytest.raises(ValueError):   # a MethodSpecError is a ValueError too
    parse_method(text)


def test_a_method_named_twice_in_a_list_is_refused():
  with pytest.raises(MethodSpecError, match="named twice"):
    parse_methods("kmeans,kmeans:3")


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        timeout=300)


@pytest.mark.parametrize("module, args, says", [
    ("experiments.segment", ["--method", "vote:kmeans:5,nosuch"], "unknown method 'nosuch'"),
    ("experiments.segment", ["--method", "kmeans", "--method_options", "foo=1"],
     "unknown field 'foo'"),
    ("experiments.segment", ["--method", "otsu:5"], "takes no number of clusters"),
    ("experiments.segment", ["--method", "cuts", "--fit_dir", "/nonexistent/fit"],
     "--fit_dir /nonexistent/fit does not exist"),
    ("experiments.reproduce_tables", ["--methods", "sgscn,kmeans:x"], "neither a number"),
    ("experiments.benchmark", ["--method", "kmeans:nope=1"], "unknown field 'nope'"),
    ("experiments.mni152", ["--methods", "jule:foo=1"], "unknown field 'foo'"),
    ("experiments.evaluate", ["--method", "kmeans:zz"], "neither a number"),
    ("experiments.segment", ["--methods_module", "no_such_module_here", "--method", "kmeans"],
     "--methods_module no_such_module_here: cannot import it"),
])
def test_each_command_refuses_a_bad_spec_in_one_line_before_any_work(module, args, says,
                                                                      tmp_path):
  out = [] if module == "experiments.benchmark" else ["--out_dir", str(tmp_path / "out")]
  proc = _run(module, *args, *out)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr and not (tmp_path / "out" / "cases").exists()


def test_an_empty_fit_dir_is_refused_before_any_work(tmp_path):
  (tmp_path / "empty").mkdir()
  proc = _run("experiments.segment", "--method", "cuts", "--fit_dir", str(tmp_path / "empty"),
              "--out_dir", str(tmp_path / "out"))
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
  assert "no image" in proc.stderr and not (tmp_path / "out").exists()
