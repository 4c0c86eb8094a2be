"""S3-Net's network (`Config(architecture="s3net")`): layers, shapes, parameter count, runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sgscn_jax import Config, get_method
from sgscn_jax.core import conv, network, s3net, warp
from sgscn_jax.data import resize, synthetic
from sgscn_jax.running import comparison

S3 = get_method("s3net")
SMALL = dataclasses.replace(S3.quick_config, n_channels=8, iterations=4, early_stop=False)


def test_preset_is_the_published_settings():
  cfg = S3.default_config
  assert cfg.architecture == "s3net" and cfg.learning_rate == 0.2 and cfg.iterations == 50
  assert dict(cfg.loss_weights) == {"cross_entropy": 3.5, "transform_consistency_kl": 0.2,
                                    "edge_aware_spatial": 4.0}
  assert S3.working_size == (256, 256) and get_method("sgscn").working_size is None
  assert Config().architecture == "sgscn"
  with pytest.raises(ValueError, match="architecture"):
    Config(architecture="unet")


def _init_shapes(image_shape, cfg):
  return jax.eval_shape(lambda: network.init(jax.random.key(0), image_shape, cfg))


def test_parameter_count_is_stated_and_counted():
  params = _init_shapes((8, 8, 3), S3.default_config)
  assert network.parameter_count(params) == 171_618 == s3net.parameter_count_formula(3, 100, 1)
  for c_in, c, blocks in ((1, 12, 1), (3, 8, 2)):
    cfg = dataclasses.replace(S3.default_config, n_channels=c, n_conv=blocks)
    params = _init_shapes((8, 8, c_in), cfg)
    assert network.parameter_count(params) == s3net.parameter_count_formula(c_in, c, blocks)
  assert sorted(params) == ["aux", "bn_aux", "bn_deform", "bn_ilka0", "bn_ilka1", "bn_main",
                            "bn_stem", "deform", "ilka0", "ilka1", "main", "stem"]


def test_shapes_heads_and_2d_only():
  cfg = dataclasses.replace(S3.default_config, n_channels=6)
  image = jnp.asarray(np.random.default_rng(0).random((10, 12, 3)).astype(np.float32))
  fast = comparison.FAST_COMPILE
  params = jax.jit(network.init, static_argnums=(1, 2), compiler_options=fast)(
      jax.random.key(0), image.shape, cfg)
  np.testing.assert_array_equal(params["deform"]["offset_kernel"], 0.0)  # a plain conv at init
  main, aux = jax.jit(lambda p, x: (network.apply(p, x, cfg),
                                    network.apply_consistency_head(p, x, cfg)),
                       compiler_options=fast)(params, image)
  assert main.shape == aux.shape == (10, 12, 6)
  assert not np.allclose(main, aux)
  # BN on the image's own statistics: every channel of S has mean 0, variance ~1
  np.testing.assert_allclose(jnp.mean(main, axis=(0, 1)), 0.0, atol=1e-5)
  with pytest.raises(ValueError, match="2D only"):
    _init_shapes((4, 6, 6, 1), cfg)


def test_depthwise_conv_matches_lax_grouped_conv():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(9, 11, 4)).astype(np.float32))
  for k, d in ((3, 1), (5, 2), (7, 3)):
    kernel = jnp.asarray(rng.normal(size=(k, k, 4)).astype(np.float32))
    want = lax.conv_general_dilated(
        x[None], kernel[:, :, None, :], (1, 1), "SAME", rhs_dilation=(d, d),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4)[0]
    np.testing.assert_allclose(s3net.depthwise_conv(x, kernel, d), want, rtol=1e-5, atol=1e-5)
  # its written-out gradient against autodiff of the grouped convolution
  kernel = jnp.asarray(rng.normal(size=(5, 5, 4)).astype(np.float32))
  grouped = lambda x, k: lax.conv_general_dilated(
      x[None], k[:, :, None, :], (1, 1), "SAME", rhs_dilation=(2, 2),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4)[0]
  got = jax.grad(lambda x, k: jnp.sum(jnp.sin(s3net.depthwise_conv(x, k, 2))), (0, 1))(x, kernel)
  want = jax.grad(lambda x, k: jnp.sum(jnp.sin(grouped(x, k))), (0, 1))(x, kernel)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  vol = jnp.asarray(rng.normal(size=(4, 5, 6, 2)).astype(np.float32))  # rank-generic
  kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 2)).astype(np.float32))
  want = lax.conv_general_dilated(vol[None], kernel[..., None, :], (1, 1, 1), "SAME",
                                  dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
                                  feature_group_count=2)[0]
  np.testing.assert_allclose(s3net.depthwise_conv(vol, kernel), want, rtol=1e-5, atol=1e-5)


def test_deformable_conv_with_zero_offsets_is_the_plain_conv():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(7, 9, 5)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(3, 3, 5, 4)).astype(np.float32))
  got = s3net.deformable_conv(x, jnp.zeros((7, 9, 9, 2)), kernel)
  np.testing.assert_allclose(got, conv.conv_same_reference(x, kernel), rtol=1e-5, atol=1e-5)


def test_deformable_conv_reads_bilinearly_at_the_offset_positions():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(6, 7, 3)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 2)).astype(np.float32))
  offsets = jnp.asarray(rng.normal(scale=2.0, size=(6, 7, 9, 2)).astype(np.float32))
  rows, cols = np.meshgrid(np.arange(6.0), np.arange(7.0), indexing="ij")
  want = 0
  for t in range(9):
    i, j = divmod(t, 3)
    want = want + warp.sample_bilinear(x, jnp.asarray(rows + i - 1) + offsets[..., t, 0],
                                       jnp.asarray(cols + j - 1) + offsets[..., t, 1]
                                       ) @ kernel[i, j]
  np.testing.assert_allclose(s3net.deformable_conv(x, offsets, kernel), want,
                             rtol=1e-5, atol=1e-5)
  # an integer offset of +1 column on every tap is the plain conv of x shifted left (away
  # from column 0, where the deformable conv still reads x[:, 0] and the shifted copy not)
  shifted = jnp.pad(x[:, 1:], ((0, 0), (0, 1), (0, 0)))
  ones = jnp.zeros((6, 7, 9, 2)).at[..., 1].set(1.0)
  np.testing.assert_allclose(s3net.deformable_conv(x, ones, kernel)[:, 1:],
                             conv.conv_same_reference(shifted, kernel)[:, 1:],
                             rtol=1e-5, atol=1e-5)


def test_vmap_equals_single_runs():
  entry = S3.entry_points(comparison.FAST_COMPILE)
  images = np.stack([synthetic.lesion_image(i, (16, 16))[0] for i in range(2)]).astype(
      np.float32)
  keys = jax.random.split(jax.random.key(3), 2)
  batch = entry.segment_batch(keys, images, SMALL, batching="vmap")
  for b in range(2):
    one = entry.segment_one(keys[b], images[b], SMALL)
    # equal up to float reassociation (a vmapped program sums in another order): the
    # same transforms (same keys), the same losses to 1e-4, the same label almost everywhere
    np.testing.assert_allclose(batch.history.total[b], one.history.total, rtol=1e-4)
    np.testing.assert_allclose(batch.history.terms["transform_consistency_kl"][b],
                               one.history.terms["transform_consistency_kl"], rtol=1e-4)
    assert np.mean(np.asarray(batch.labels[b]) == np.asarray(one.labels)) >= 0.99


def test_a_few_iterations_reduce_the_loss_on_a_real_ph2_image(shared_data):
  from sgscn_jax.data.datasets import get_dataset
  module = get_dataset("ph2")
  record = module.load_case(module.list_cases(shared_data / "PH2")[0])
  image = resize.resize_image(record.image, (32, 32)).astype(np.float32)
  cfg = dataclasses.replace(SMALL, n_channels=16, iterations=6)
  result = S3.entry_points(comparison.FAST_COMPILE).segment_one(jax.random.key(0), image, cfg)
  total = np.asarray(result.history.total)
  assert np.all(np.isfinite(total)) and bool(result.finite)
  assert total[-1] < total[0]
  ce = np.asarray(result.history.terms["cross_entropy"])
  assert ce[-1] < ce[0]


def _numpy_deformable(x, offsets, kernel):
  """v1 by hand: y[p] = sum_k kernel[k]^T x(p + k - 1 + offsets[p, k]), bilinear, zeros outside."""
  h, w, _ = x.shape
  y = np.zeros((h, w, kernel.shape[-1]))
  for r in range(h):
    for c in range(w):
      for t in range(9):
        i, j = divmod(t, 3)
        pr, pc = r + i - 1 + offsets[r, c, t, 0], c + j - 1 + offsets[r, c, t, 1]
        r0, c0 = int(np.floor(pr)), int(np.floor(pc))
        value = np.zeros(x.shape[-1])
        for rr, wr in ((r0, 1 - (pr - r0)), (r0 + 1, pr - r0)):
          for cc, wc in ((c0, 1 - (pc - c0)), (c0 + 1, pc - c0)):
            if 0 <= rr < h and 0 <= cc < w:
              value = value + wr * wc * x[rr, cc]
        y[r, c] += value @ kernel[i, j]
  return y


@pytest.mark.parametrize("radius", [1, 2])
def test_bounded_deformable_conv_equals_v1_inside_its_bound(radius):
  """With |offsets| < R (the clip squash is then the identity) the bounded form's read is
  v1's: the value (also against NumPy) and all three gradients, also at integer offsets
  (zero: the initialisation), where both take the bilinear weights' right derivative."""
  rng = np.random.default_rng(4)
  x = rng.normal(size=(12, 10, 4)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
  raw = rng.uniform(-radius + 0.02, radius - 0.02, size=(12, 10, 9, 2)).astype(np.float32)
  raw[1:3, 1:-1] = 0.0   # integer offsets, away from the border (a read at row or column
                         # -1 lies on v1's clip of positions, whose gradient is halved)
  raw[3, :, :, 0] = -radius                        # and some on the bound itself
  offsets = s3net.bound_offsets(jnp.asarray(raw), radius, "clip")
  np.testing.assert_array_equal(offsets, raw)
  bounded = lambda x, o, k: s3net.deformable_conv(x, o, k, bound=radius)
  got = bounded(x, offsets, kernel)
  np.testing.assert_allclose(got, s3net.deformable_conv(x, offsets, kernel), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(got, _numpy_deformable(x, raw, kernel), rtol=1e-4, atol=1e-4)
  loss = lambda fn: lambda x, o, k: jnp.sum(jnp.sin(fn(x, o, k)))
  want = jax.grad(loss(s3net.deformable_conv), (0, 1, 2))(x, offsets, kernel)
  got = jax.jit(jax.grad(loss(bounded), (0, 1, 2)))(x, offsets, kernel)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bounded_offsets_squash_and_the_bounded_network_at_initialisation():
  raw = jnp.asarray([-50.0, -1.0, 0.0, 0.3, 50.0])
  squashed = s3net.bound_offsets(raw, 2.0)
  assert float(jnp.max(jnp.abs(squashed))) <= 2.0
  np.testing.assert_allclose(jax.grad(lambda r: s3net.bound_offsets(r, 2.0))(0.0), 1.0)
  np.testing.assert_allclose(s3net.bound_offsets(raw, 2.0, "clip"), [-2, -1, 0, 0.3, 2])
  with pytest.raises(ValueError, match="squash"):
    s3net.bound_offsets(raw, 2.0, "sigmoid")
  # offsets start at zero: the bounded network is v1's network at initialisation
  image = jnp.asarray(np.random.default_rng(5).random((10, 12, 3)).astype(np.float32))
  exact, fast = s3net.S3Net(n_channels=6), s3net.S3Net(n_channels=6, offset_bound=1.0)
  params = exact.init(jax.random.key(0), image)
  np.testing.assert_allclose(fast.apply(params, image), exact.apply(params, image),
                             rtol=1e-5, atol=1e-5)
  assert Config().deform_offset_bound is None
  assert Config(deform_offset_bound=1).deform_offset_bound == 1.0
  with pytest.raises(ValueError, match="deform_offset_bound"):
    Config(deform_offset_bound=0.0)
  from sgscn_jax.core.config import config_from_text
  assert config_from_text("deform_offset_bound:2").deform_offset_bound == 2.0
  assert config_from_text("deform_offset_bound:0").deform_offset_bound is None
  # the config's bound reaches the network `network.init` / `apply` build
  from sgscn_jax.core import network
  bounded = Config(architecture="s3net", n_channels=6, deform_offset_bound=1.0)
  assert network.module(bounded).offset_bound == 1.0
  assert network.module(dataclasses.replace(bounded, deform_offset_bound=None)).offset_bound is None
