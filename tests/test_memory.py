"""The memory model, the automatic choice of settings, and the guard that refuses before
starting."""

import math

import pytest

from sgscn_jax.volume import memory

GB = 1e9


def test_parse_bytes():
  assert memory.parse_bytes("8G") == 8 << 30
  assert memory.parse_bytes("512M") == 512 << 20
  assert memory.parse_bytes("1.5GB") == int(1.5 * (1 << 30))
  assert memory.parse_bytes("2GiB") == 2 << 30
  assert memory.parse_bytes(1234) == 1234
  for bad in ("lots", "-1G", "0"):
    with pytest.raises(ValueError):
      memory.parse_bytes(bad)


def test_available_memory_is_positive():
  assert memory.available_bytes() > 0


def test_estimate_follows_the_model():
  shape, c = (32, 64, 64), 32
  voxels = math.prod(shape)
  expected = memory.BASE_BYTES + 4 * voxels * (memory.ACTIVATIONS_3D * c + 36 + 4)
  assert memory.estimate_bytes(shape, 1, c) == int(expected)
  # Linear in channels and voxels; slice mode needs one slice's activations only.
  assert memory.estimate_bytes(shape, 1, 64) > memory.estimate_bytes(shape, 1, 32)
  assert memory.estimate_bytes(shape, 1, c, mode="slices") < memory.estimate_bytes(shape, 1, c)
  # The example: a 1 mm brain (8.7 M voxels) at 100 channels is ~3.5 GB per
  # activation, and one 3D run holds ACTIVATIONS_3D of them.
  brain = (182, 218, 218)
  assert 4 * math.prod(brain) * 100 == pytest.approx(3.5 * GB, rel=0.03)
  assert memory.estimate_bytes(brain, 1, 100) > 80 * GB


def test_flops_per_iteration():
  # 3 x forward: 2 V (27 c_in C + 27 C^2 + C^2) for n_conv = 2.
  assert memory.flops_per_iteration((2, 3, 4), 1, 10) == 3 * 2 * 24 * (270 + 2700 + 100)
  assert (memory.flops_per_iteration((2, 3, 4), 1, 10, mode="slices")
          == 3 * 2 * 24 * (90 + 900 + 100))


def test_anisotropic_volumes_downsample_their_fine_axes_first():
  assert memory.factors_for((3.0, 1.0, 1.0), 2) == (1, 2, 2)
  assert memory.factors_for((1.0, 1.0, 1.0), 3) == (3, 3, 3)
  assert memory.factors_for(None, 2) == (2, 2, 2)
  assert memory.factor_shape((30, 100, 101), (1, 2, 2)) == (30, 50, 50)


def test_auto_plan_prefers_native_3d_then_channels_then_resolution_then_slices():
  shape = (64, 128, 128)
  roomy = memory.plan_volume(shape, memory_limit="20G")
  assert (roomy.mode, roomy.factor, roomy.n_channels) == ("3d", 1, 100)
  need_100 = memory.estimate_bytes(shape, 1, 100)
  need_64 = memory.estimate_bytes(shape, 1, 64)
  tighter = memory.plan_volume(shape, memory_limit=(need_100 + need_64) // 2)
  assert (tighter.mode, tighter.factor, tighter.n_channels) == ("3d", 1, 64)
  need_32 = memory.estimate_bytes(shape, 1, 32)
  small = memory.plan_volume(shape, memory_limit=need_32 - 1)
  assert small.mode == "3d" and small.factor == 2 and small.work_shape == (32, 64, 64)
  assert small.estimated_bytes <= need_32 - 1
  # 3D at half resolution does not fit: slices at full resolution come first.
  need_3d_half = memory.estimate_bytes((32, 64, 64), 1, 32)
  slices = memory.plan_volume(shape, memory_limit=need_3d_half - 1)
  assert (slices.mode, slices.factor) == ("slices", 1)
  assert "slices at 64x128x128" in slices.describe() and "budget" in slices.describe()
  # Then 3D at a third of the resolution.
  need_slices = memory.estimate_bytes(shape, 1, 32, mode="slices")
  coarse = memory.plan_volume(shape, memory_limit=need_slices - 1)
  assert (coarse.mode, coarse.factor) in (("slices", 2), ("3d", 3))


def test_time_limit_lowers_channels():
  plan = memory.plan_volume((64, 64, 64), memory_limit="20G", time_limit=60, iterations=50)
  assert plan.estimated_seconds <= 60 and plan.n_channels < 100


def test_guard_refuses_an_impossible_request_naming_settings_that_fit():
  need = memory.estimate_bytes((96, 256, 256), 1, 100)
  with pytest.raises(memory.MemoryBudgetError) as info:
    memory.plan_volume((96, 256, 256), mode="3d", factor=1, n_channels=100, memory_limit="4G")
  message = str(info.value)
  assert message.startswith("refusing to start: 3d at 96x256x256 with 100 channels needs about "
                            f"{need / GB:.1f} GB, over the 4.3 GB memory budget.")
  assert "Settings that would fit: --volume_mode 3d --factor 2 --n_channels" in message
  # Every setting it names does fit.
  for part in message.split("Settings that would fit: ")[1].split("; "):
    words = part.split()
    plan = memory.plan_volume((96, 256, 256), mode=words[1], factor=int(words[3]),
                              n_channels=int(words[5]), memory_limit="4G")
    assert plan.estimated_bytes <= 4 << 30 and plan.chosen == "fixed"


def test_guard_with_nothing_that_fits():
  with pytest.raises(memory.MemoryBudgetError, match="No setting fits"):
    memory.plan_volume((8, 8, 8), memory_limit="1M")
