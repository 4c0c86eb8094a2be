"""experiments.segment's flags for the s3net preset (no run: the flags only)."""

from absl import flags

from experiments import segment
from sgscn_jax import Config


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


def test_sgscn_default_is_unchanged_and_can_take_the_s3net_losses():
  assert _parse("--method", "sgscn") == Config()
  assert segment.parse_size("auto", "ph2", "sgscn") == 256
  cfg = _parse("--method", "sgscn", "--w_at", "0.3", "--w_s", "2")
  assert dict(cfg.loss_weights) == {"cross_entropy": 1.0, "sparse_spatial": 5.0,
                                    "context_consistency": 1.0, "edge_aware_spatial": 2.0,
                                    "transform_consistency_kl": 0.3}
