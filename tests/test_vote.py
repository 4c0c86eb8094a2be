"""The vote of methods (`--method vote:A,B,C`): each member's mask-free object, their per-pixel
majority (ties: the first member's), the run folder it leaves, resume, and the parse errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from sgscn_jax import get_method, registry
from sgscn_jax.baselines import method_vote
from sgscn_jax.data.datasets import list_dataset, object_prior
from sgscn_jax.evaluation import consensus
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import comparison, scoring

ROOT = Path(__file__).resolve().parents[1]
SPEC = "vote:kmeans:2,otsu,kmeans:3"
SLUGS = ("kmeans_k2", "otsu", "kmeans_k3")
DEMO = ["--dataset=demo", "--demo_n=2", "--demo_size=32", "--batch_size=1"]


def _cli(module, *flags):
  return subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                        text=True, timeout=600)


def _object_is_label_one(monkeypatch):
  """`scoring.find_object` replaced by 'the object is label 1', so hand-built label maps are
  hand-built objects."""
  def find(labels, record, config):
    return scoring.FoundObject(np.asarray(labels) == 1, "label 1", 0.0, "tag")
  monkeypatch.setattr(scoring, "find_object", find)


def test_three_members_vote_per_pixel_majority(monkeypatch):
  _object_is_label_one(monkeypatch)
  a = np.array([[1, 1, 0, 0]])
  b = np.array([[1, 0, 1, 0]])
  c = np.array([[1, 0, 0, 0]])
  found, vote = scoring.voted_object(None, [a, b, c], None, None, first_breaks_ties=True)
  np.testing.assert_array_equal(found.mask, [[True, False, False, False]])
  np.testing.assert_allclose(vote.share, [[1, 1 / 3, 1 / 3, 0]])
  np.testing.assert_allclose(vote.agreement, [[1, 2 / 3, 2 / 3, 1]])
  assert found.reason.startswith("vote of 3 methods' objects (ties: the first member's")
  # permuting the members changes nothing with an odd count
  again, _ = scoring.voted_object(None, [c, a, b], None, None, first_breaks_ties=True)
  np.testing.assert_array_equal(again.mask, found.mask)


def test_two_members_tie_goes_to_the_first_members_object(monkeypatch):
  _object_is_label_one(monkeypatch)
  a = np.array([[1, 1, 0, 0]])
  b = np.array([[1, 0, 1, 0]])
  ab, vote = scoring.voted_object(None, [a, b], None, None, first_breaks_ties=True)
  ba, _ = scoring.voted_object(None, [b, a], None, None, first_breaks_ties=True)
  np.testing.assert_array_equal(ab.mask, [[True, True, False, False]])   # a's object
  np.testing.assert_array_equal(ba.mask, [[True, False, True, False]])   # b's object
  np.testing.assert_allclose(vote.agreement, [[1, 0.5, 0.5, 1]])
  # the seed consensus keeps its own tie rule: the consensus map's object
  fused, _ = scoring.voted_object(np.array([[0, 0, 1, 1]]), [a, b], None, None)
  np.testing.assert_array_equal(fused.mask, [[True, False, True, False]])


def test_the_vote_method_runs_each_member_with_its_own_key():
  from sgscn_jax.data import synthetic
  import jax
  config = registry.parse_method(SPEC).config(comparison.quick_configs())
  assert config.slugs == SLUGS and config.slug == "vote_kmeans_k2+otsu+kmeans_k3"
  assert config.title == "vote (k-means k=2, Otsu, k-means k=3)"
  image, _ = synthetic.lesion_image(0, (32, 32))
  keys = jax.random.split(jax.random.key(0), 2)
  result = get_method("vote").segment_batch(keys, np.stack([image, image]), config)
  assert result.members.shape == (2, 3, 32, 32)
  assert list(result.member_n_labels[0]) == [2, 2, 3]
  kmeans = get_method("kmeans")
  own = kmeans.segment_batch(method_vote.member_keys(keys, 2), np.stack([image, image]),
                             config.members[2][1])
  np.testing.assert_array_equal(result.members[:, 2], np.asarray(own.labels))
  again = get_method("vote").segment_batch(keys, np.stack([image, image]), config)
  np.testing.assert_array_equal(again.members, result.members)   # deterministic


def test_parse_errors():
  """A vote is named in the registry's grammar (`registry.parse_methods`): members after
  `vote:` joined by `+` (or, the older form, by commas when the vote comes last)."""
  assert [str(s) for s in comparison.parse_methods("sgscn,vote:kmeans:5,otsu")] == [
      "sgscn", "vote:kmeans:5+otsu"]
  assert [str(s) for s in comparison.parse_methods("vote:kmeans:5+otsu_blue,chan_vese")] == [
      "vote:kmeans:5+otsu_blue", "chan_vese"]
  for text, message in (("vote:kmeans:5", "at least 2 member methods"),
                        ("vote", "at least 2 member methods"),
                        ("vote:kmeans:5,nope", "unknown method 'nope'"),
                        ("vote:otsu:3,kmeans", "otsu takes no number of clusters"),
                        ("vote:kmeans:x,otsu", "neither a number of clusters nor FIELD=VALUE"),
                        ("vote:vote:a,b", "vote takes member methods"),
                        ("vote:kmeans,kmeans:3", "a member is named twice")):  # default k 3
    with pytest.raises(registry.MethodSpecError, match=message):
      comparison.parse_methods(text)
  with pytest.raises(method_vote.VoteError, match="needs the object step"):
    method_vote.check_options(registry.parse_method(SPEC).config(comparison.quick_configs()),
                              objects=None)
  unknown = _cli("experiments.segment", "--method=vote:kmeans:2,nope", *DEMO)
  assert unknown.returncode == 2 and "unknown method 'nope'" in unknown.stderr
  no_objects = _cli("experiments.segment", f"--method={SPEC}", "--noobjects", *DEMO)
  assert no_objects.returncode == 2
  assert "it needs the object step (drop --noobjects)" in no_objects.stderr


def _revote(out, record, config):
  """The vote again, from the saved member label maps, as the runner does it."""
  members = [np.asarray(iio.imread(out / "member_labels" / f"{record.case_id}_{s}.png"))
             for s in SLUGS]
  found = [scoring.find_object(m, record, config).mask for m in members]
  return consensus.vote_objects(np.stack(found), tie=found[0])


def test_end_to_end_saved_object_is_the_members_vote_and_resume(tmp_path):
  out = tmp_path / "vote"
  proc = _cli("experiments.segment", f"--method={SPEC}", f"--out_dir={out}", *DEMO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  cases, load = list_dataset("demo", None, demo_n=2, demo_size=32, seed=0)
  config = ObjectConfig(**object_prior("demo"))
  for case in cases:
    record = load(case)
    row = json.loads((out / "cases" / f"{case.case_id}.json").read_text())
    vote = _revote(out, record, config)
    saved = np.asarray(iio.imread(out / "objects" / f"{case.case_id}.png")) > 0
    np.testing.assert_array_equal(saved, vote.mask)
    labels = np.asarray(iio.imread(out / "labels" / f"{case.case_id}.png"))
    np.testing.assert_array_equal(labels, vote.mask.astype(labels.dtype))  # the 2-label map
    share = np.asarray(iio.imread(out / "object_share" / f"{case.case_id}.png"))
    np.testing.assert_array_equal(share, np.round(255 * vote.share).astype(np.uint8))
    assert row["object_agreement_mean"] == round(float(vote.agreement.mean()), 5)
    assert row["method"] == "vote_kmeans_k2+otsu+kmeans_k3" and row["members"] == " ".join(SLUGS)
    assert row["largest_overlap.dice"] == row["object.dice"]   # the paper protocol: the vote
  again = _cli("experiments.segment", f"--method={SPEC}", f"--out_dir={out}", *DEMO)
  assert again.returncode == 0 and "resuming: 2 of 2 cases already done" in again.stderr
  # other object settings: voted again from the saved member maps
  rim = _cli("experiments.segment", f"--method={SPEC}", f"--out_dir={out}", "--object_rim=0",
             *DEMO)
  assert rim.returncode == 0 and "only rescore (objects.rim_band 8 -> 0)" in rim.stderr
  config = ObjectConfig(**dict(object_prior("demo"), rim_band=0))
  for case in cases:
    record = load(case)
    row = json.loads((out / "cases" / f"{case.case_id}.json").read_text())
    assert "rim_band=0" in row["object_config"]
    saved = np.asarray(iio.imread(out / "objects" / f"{case.case_id}.png")) > 0
    np.testing.assert_array_equal(saved, _revote(out, record, config).mask)


def test_reproduce_tables_names_the_vote_column(tmp_path):
  proc = _cli("experiments.reproduce_tables", "--quick", "--methods=otsu,vote:kmeans:2,otsu",
              "--noablation", "--figure_cases=0", f"--out_dir={tmp_path}", *DEMO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = (tmp_path / "table1_object.md").read_text()
  assert "vote (k-means k=2, Otsu)" in table
  assert (tmp_path / "vote_kmeans_k2+otsu" / "seed0" / "member_labels").is_dir()
