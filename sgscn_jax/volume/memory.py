"""How much memory (and time) a volume's segmentation needs, and choosing settings that fit.

Memory model (peak resident memory of one process, bytes), fitted to measured peaks
(`python -m studies.memory_calibration`, fresh subprocess per run, `ru_maxrss`):

    3d      M = M_0 + 4 V (A_3d C (n_conv + 1) / 3 + 36 + 4 C_in)
    slices  M = M_0 + 4 S (A_2d C (n_conv + 1) / 3) + 4 V (C_in + 4)

with V the voxels of the working volume, S the pixels of one slice, C the channels,
M_0 the runtime and compiler (JAX, XLA, the compiled program). A_3d and A_2d are the
activations of C channels alive at the peak of one iteration (forward residuals, the
backward pass, the weight-gradient taps: `conv.py`), measured at n_conv = 2 and scaled
with the number of layers. In slice mode `lax.map` runs one slice at a time, so only one
slice's activations are alive, plus the volume's input and outputs.

Measured (jaxlib 0.10.2, 2 cores, 2 iterations; peak RSS vs this estimate, MB):

    3d      16x32x32, C 32:     497 vs 527      3d  32x64x64, C 16:  705 vs 709
    3d      32x64x64, C 32:     920 vs 927      3d  32x64x64, C 64: 1360 vs 1363
    3d      48x96x96, C 32:    1973 vs 2013
    slices  32x64x64, C 32:     484 vs 494      slices 16x128x128, C 64: 647 vs 660

(A_3d = 26 is the slope over C at 32x64x64: 13.65 MB per channel; it needs the one-tap-
at-a-time weight gradient of `conv.py`, without which it was about 50.)

Time model: one iteration costs about 3x the forward FLOPs,
    F = 3 * 2 V (k^r C_in C + (n_conv - 1) k^r C^2 + C^2),   k^r = 27 (3D) or 9 (slices),
at a rate `FLOPS_PER_SECOND` measured on the project's 2-core machine.

`plan_volume` picks, from the volume's shape and the memory available, the working
resolution (a downsampling factor), the channel count and the mode ("3d" first, "slices"
as the fallback), in that order of preference:

    3d at factor 1, 2; then slices at factor 1, 2; then 3d at 3, 4, 6, 8; then slices at 3..8
    (at each: channels max, 64, 32, the first that fits)

i.e. 3D is given up for slices at full resolution before it drops below half resolution.

Any of these can be fixed by the caller; a fixed setting that does not fit is refused
with a `MemoryBudgetError` that names settings that would, before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

from sgscn_jax.core.batching import host_available_bytes as available_bytes

BYTES_PER_FLOAT = 4
# Fitted constants (studies/memory_calibration.py; see the module docstring).
BASE_BYTES = 470e6
ACTIVATIONS_3D = 26.0
ACTIVATIONS_2D = 44.0
FLOPS_PER_SECOND = 10e9     # achieved by the 3D loop on the shared 2-core machine (measured
                            # 3.3-9.4 GFLOP/s at 32x64x64, 32 channels, under load)
SAFETY = 0.8                # plan with at most this share of the memory available
FACTORS = (1, 2, 3, 4, 6, 8)
CHANNEL_STEPS = (64, 32)      # auto never goes below 32 channels (pass n_channels for fewer)


class MemoryBudgetError(MemoryError):
  """A requested setting needs more memory than the budget; the message names what fits."""


def parse_bytes(text) -> int:
  """'8G', '512M', '1.5GB', '2000000' -> bytes (powers of 1024 for K, M, G, T)."""
  if isinstance(text, (int, float)):
    return int(text)
  s = str(text).strip().upper().removesuffix("B").removesuffix("I")
  scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
  number = s[:-1] if s[-1:] in "KMGT" else s
  try:
    value = float(number) * scale
  except ValueError:
    raise ValueError(f"not a memory size: {text!r} (e.g. 8G, 512M)") from None
  if not value > 0:
    raise ValueError(f"memory size must be positive, got {text!r}")
  return int(value)


def _gb(n: float) -> str:
  return f"{n / 1e9:.1f} GB"


def estimate_bytes(spatial_shape: Sequence[int], c_in: int, n_channels: int, *,
                   mode: str = "3d", n_conv: int = 2, axis: int = 0) -> int:
  """Peak bytes of one SGSCN run on a working volume (module docstring).

  Args:
    spatial_shape: `(D, H, W)` of the volume as processed.
    c_in: input channels.
    n_channels: the network's channels C.
    mode: "3d" or "slices" (slices along `axis`).
  """
  voxels = math.prod(int(n) for n in spatial_shape)
  layers = (n_conv + 1) / 3.0
  if mode == "3d":
    per_voxel = ACTIVATIONS_3D * n_channels * layers + 36 + 4 * c_in
    return int(BASE_BYTES + BYTES_PER_FLOAT * voxels * per_voxel)
  if mode == "slices":
    plane = voxels // int(spatial_shape[axis])
    return int(BASE_BYTES + BYTES_PER_FLOAT * plane * ACTIVATIONS_2D * n_channels * layers
               + BYTES_PER_FLOAT * voxels * (c_in + 4))
  raise ValueError(f"mode must be '3d' or 'slices', got {mode!r}")


def flops_per_iteration(spatial_shape: Sequence[int], c_in: int, n_channels: int, *,
                        mode: str = "3d", n_conv: int = 2) -> float:
  """About 3x the forward FLOPs of the network on the working volume (module docstring)."""
  voxels = math.prod(int(n) for n in spatial_shape)
  taps = 27 if mode == "3d" else 9
  c = n_channels
  return 3.0 * 2.0 * voxels * (taps * c_in * c + (n_conv - 1) * taps * c * c + c * c)


def factors_for(spacing: Optional[Sequence[float]], factor: int, rank: int = 3) -> tuple:
  """Per-axis downsampling factors for an overall `factor`: an axis coarser than the finest
  is downsampled less, f_a = max(1, round(factor * min(spacing) / spacing_a)), so the
  working volume becomes more isotropic rather than losing its few thick slices."""
  if spacing is None:
    return (int(factor),) * rank
  finest = min(float(s) for s in spacing)
  return tuple(max(1, int(round(factor * finest / float(s)))) for s in spacing)


def factor_shape(shape: Sequence[int], factors: Sequence[int]) -> tuple:
  """`max(2, round(n_a / f_a))` per axis."""
  return tuple(max(2, int(round(int(n) / int(f)))) for n, f in zip(shape, factors))


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a volume will be run with, and why.

  Attributes:
    mode: "3d" or "slices".
    factor: overall downsampling factor (1: native resolution).
    factors: per-axis factors (`factors_for`).
    work_shape: `(D, H, W)` of the working volume.
    n_channels: the network's channels.
    estimated_bytes: `estimate_bytes` of this plan.
    budget_bytes: the memory this plan had to fit in.
    estimated_seconds: iterations x `flops_per_iteration` / `FLOPS_PER_SECOND`.
    chosen: "auto" or "fixed" (every setting was given).
  """
  mode: str
  factor: int
  factors: tuple
  work_shape: tuple
  n_channels: int
  estimated_bytes: int
  budget_bytes: int
  estimated_seconds: float
  chosen: str = "auto"

  def describe(self) -> str:
    if self.chosen == "baseline":
      return (f"{self.mode} at {'x'.join(map(str, self.work_shape))} (downsampling "
              f"{'x'.join(map(str, self.factors))}), a baseline on the voxels "
              "(memory not modelled)")
    return (f"{self.mode} at {'x'.join(map(str, self.work_shape))} (downsampling "
            f"{'x'.join(map(str, self.factors))}), {self.n_channels} channels: estimated "
            f"{_gb(self.estimated_bytes)} of {_gb(self.budget_bytes)} budget, "
            f"~{self.estimated_seconds:.0f} s of compute ({self.chosen})")


def _order(modes, factors):
  """(mode, factor) pairs in order of preference (module docstring)."""
  pairs = []
  for group in ((1, 2), (3, 4, 6, 8)):
    for mode in ("3d", "slices"):
      pairs += [(mode, f) for f in factors if f in group and mode in modes]
  pairs += [(m, f) for m in ("3d", "slices") for f in factors
            if m in modes and (m, f) not in pairs]
  return pairs


def _candidates(shape, spacing, c_in, n_conv, iterations, modes, factors, channels):
  for mode, factor in _order(modes, factors):
    f = factors_for(spacing, factor)
    work = factor_shape(shape, f)
    for c in channels:
      yield Plan(mode, factor, f, work, c, estimate_bytes(work, c_in, c, mode=mode, n_conv=n_conv),
                 0, iterations * flops_per_iteration(work, c_in, c, mode=mode, n_conv=n_conv)
                 / FLOPS_PER_SECOND)


def plan_volume(shape: Sequence[int], c_in: int = 1, *, spacing=None, mode: str = "auto",
                factor: Optional[int] = None, n_channels: Optional[int] = None,
                max_channels: int = 100, n_conv: int = 2, iterations: int = 50,
                memory_limit=None, time_limit: Optional[float] = None,
                channel_steps: Sequence[int] = CHANNEL_STEPS) -> Plan:
  """Chooses mode, working resolution and channels for a volume `shape = (D, H, W)`.

  Args:
    shape: the volume's `(D, H, W)`.
    c_in: its channels.
    spacing: voxel size `(dz, dy, dx)` (coarse axes are downsampled less), or None.
    mode: "auto", "3d" or "slices".
    factor: a fixed overall downsampling factor, or None (auto).
    n_channels: fixed channels, or None (auto: `max_channels`, then 64, 32).
    n_conv, iterations: of the run (memory and time estimates).
    memory_limit: bytes (or '8G') the run may use; default `SAFETY` x `available_bytes()`.
    time_limit: optional compute budget in seconds (estimated, `FLOPS_PER_SECOND`): plans
      estimated to take longer are passed over like plans that do not fit in memory.
    channel_steps: the channel counts tried after `max_channels` (those below it).

  Returns:
    The first `Plan` that fits (order in the module docstring).

  Raises:
    MemoryBudgetError: nothing with the fixed settings fits; the message names the budget,
      the estimate of the requested setting and the best settings that would fit.
  """
  if len(shape) != 3:
    raise ValueError(f"shape must be (D, H, W), got {tuple(shape)}")
  if mode not in ("auto", "3d", "slices"):
    raise ValueError(f"mode must be 'auto', '3d' or 'slices', got {mode!r}")
  budget = (parse_bytes(memory_limit) if memory_limit is not None
            else int(SAFETY * available_bytes()))
  modes = ("3d", "slices") if mode == "auto" else (mode,)
  factors = FACTORS if factor is None else (int(factor),)
  if n_channels is None:
    channels = (max_channels,) + tuple(c for c in channel_steps if c < max_channels)
  else:
    channels = (int(n_channels),)
  fixed = "fixed" if (mode != "auto" and factor is not None and n_channels is not None) else "auto"

  def fits(p: Plan) -> bool:
    return p.estimated_bytes <= budget and (time_limit is None or p.estimated_seconds <= time_limit)

  for plan in _candidates(shape, spacing, c_in, n_conv, iterations, modes, factors, channels):
    if fits(plan):
      return dataclasses.replace(plan, budget_bytes=budget, chosen=fixed)
  # Nothing with the requested settings fits: say what would.
  requested = next(_candidates(shape, spacing, c_in, n_conv, iterations, modes, factors, channels))
  alternatives = [p for p in _candidates(shape, spacing, c_in, n_conv, iterations, ("3d", "slices"),
                                         FACTORS, (max_channels,) + CHANNEL_STEPS) if fits(p)]
  seen, named = set(), []
  for p in alternatives:
    if (p.mode, p.factor) in seen:
      continue
    seen.add((p.mode, p.factor))
    named.append(f"--volume_mode {p.mode} --factor {p.factor} --n_channels {p.n_channels} "
                 f"({'x'.join(map(str, p.work_shape))}, ~{_gb(p.estimated_bytes)}, "
                 f"~{p.estimated_seconds:.0f} s)")
    if len(named) == 3:
      break
  what = "memory" if requested.estimated_bytes > budget else "time"
  limit = (f"{_gb(budget)} memory budget" if what == "memory"
           else f"{time_limit:.0f} s time limit")
  need = (_gb(requested.estimated_bytes) if what == "memory"
          else f"~{requested.estimated_seconds:.0f} s")
  message = (f"refusing to start: {requested.mode} at "
             f"{'x'.join(map(str, requested.work_shape))} with {requested.n_channels} channels "
             f"needs about {need}, over the {limit}. ")
  message += ("Settings that would fit: " + "; ".join(named) if named else
              "No setting fits; free memory or raise --memory_limit.")
  raise MemoryBudgetError(message)
