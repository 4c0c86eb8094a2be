"""experiments.segment's flags for the s3net preset, and the preset on a lung-like slice."""

import dataclasses

import jax
import numpy as np
from absl import flags

from experiments import segment
from sgscn_jax import Config, get_method
from sgscn_jax.builtin_methods import S3NET_CONFIG
from sgscn_jax.data import decode


def _parse(*argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["segment", *argv])
  try:
    return segment.method_from_flags()[2]
  finally:
    flags.FLAGS.unparse_flags()


def test_s3net_flags_change_the_preset_only_where_given():
  cfg = _parse("--method", "s3net", "--at_variant", "ce", "--lr", "0.36", "--iterations", "7")
  assert cfg.architecture == "s3net" and cfg.learning_rate == 0.36 and cfg.iterations == 7
  assert dict(cfg.loss_weights) == {"cross_entropy": 3.5, "edge_aware_spatial": 4.0,
                                    "transform_consistency_ce": 0.2}
  assert cfg.n_channels == 100 and cfg.n_conv == 1      # the preset's, not the SGSCN flags'
  assert segment.parse_size("auto", "ph2", "s3net") == (256, 256)
  assert segment.parse_size("auto", "demo", "s3net") is None


def test_s3net_preset_without_flags_is_the_preset_itself():
  """segment and reproduce_tables must write the same run.json for `--method s3net`: the
  loss terms keep the preset's order (a reordered L_AT made a table refuse segment's run)."""
  assert _parse("--method", "s3net") == S3NET_CONFIG
  cfg = _parse("--method", "s3net", "--at_variant", "ce", "--w_s", "2")
  assert [n for n, _ in cfg.loss_weights] == ["cross_entropy", "transform_consistency_ce",
                                              "edge_aware_spatial"]
  assert dict(_parse("--method", "s3net", "--w_at", "0").loss_weights) == {
      "cross_entropy": 3.5, "edge_aware_spatial": 4.0}


def test_sgscn_default_is_unchanged_and_can_take_the_s3net_losses():
  assert _parse("--method", "sgscn") == Config()
  assert segment.parse_size("auto", "ph2", "sgscn") == 256
  cfg = _parse("--method", "sgscn", "--w_at", "0.3", "--w_s", "2")
  assert dict(cfg.loss_weights) == {"cross_entropy": 1.0, "sparse_spatial": 5.0,
                                    "context_consistency": 1.0, "edge_aware_spatial": 2.0,
                                    "transform_consistency_kl": 0.3}


def _standardise(*argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["segment", *argv])
  try:
    return segment.standardise_from_flags(segment.method_from_flags()[1])
  finally:
    flags.FLAGS.unparse_flags()


def test_lung_ct_is_standardised_for_s3net_only_unless_a_flag_says():
  lung = ("--dataset", "lung_ct", "--data_dir", "x")
  assert _standardise("--method", "s3net", *lung)                  # the data set's default
  assert not _standardise("--method", "s3net", *lung, "--nostandardise")
  assert not _standardise("--method", "sgscn", *lung)              # SGSCN: the paper's [0, 1]
  assert _standardise("--method", "sgscn", *lung, "--standardise")
  assert not _standardise("--method", "s3net", "--dataset", "ph2", "--data_dir", "x")


def _lung_slice(n=40, seed=0):
  """Grey [n, n, 1] in [0, 1]: a bright body on a dark background, two dark lungs in it."""
  y, x = np.mgrid[:n, :n] / (n - 1) * 2 - 1
  image = np.full((n, n), 0.05)
  image[(x / 0.9) ** 2 + (y / 0.7) ** 2 <= 1] = 0.9
  for cx in (-0.4, 0.4):
    image[((x - cx) / 0.28) ** 2 + (y / 0.45) ** 2 <= 1] = 0.15
  image += np.random.default_rng(seed).normal(0, 0.03, image.shape)
  return np.clip(image, 0, 1)[..., None].astype(np.float32)


def test_s3net_keeps_several_labels_on_a_standardised_lung_like_slice():
  # The lung_ct settings (docs/S3NET.md, "collapse on lung CT"): the preset on the standardised
  # slice; 16 channels, 30 iterations and the bounded deformable conv keep it short.
  config = dataclasses.replace(S3NET_CONFIG, n_channels=16, iterations=30,
                               deform_offset_bound=1.0)
  result = get_method("s3net").segment_one(jax.random.key(0),
                                           decode.standardise(_lung_slice()), config)
  labels = np.asarray(result.labels)
  assert int(result.n_labels) >= 3 and len(np.unique(labels)) >= 3
  assert np.bincount(labels.ravel()).max() / labels.size < 0.95    # not collapsed
