"""S3-Net's network (Karimijafarbigloo et al., ICCV 2023 workshop; REFERENCE.md section 3).

Selected by `Config(architecture="s3net")`; `network.init` / `network.apply` build it, so
the loop, the losses and batching are SGSCN's. One image `[H, W, C_in]` -> the response
map S `[H, W, C]` (C = `n_channels`), and an auxiliary head of the same shape:

    stem     conv 3x3 (C_in -> C) -> ReLU -> BN
    n_blocks x [ I-LKA block (C -> C) -> BN ]
    deform   deformable conv 3x3 (C -> C), offsets from a conv 3x3 (C -> 2 * 9) -> ReLU -> BN
    main     conv 1x1 (C -> C) -> BN   = S: pseudo-labels (argmax), L_ce, L_S, the labels
    aux      conv 1x1 (C -> C) -> BN   = the consistency head read by L_AT on the warped image

I-LKA (Inception large-kernel attention), for an input x `[H, W, C]`:
    a    = dw5x5(x)                                           (depthwise, dilation 1)
    attn = conv1x1(concat[dw3x3_d1(a), dw5x5_d2(a), dw7x7_d3(a)])   (3C -> C)
    out  = x + x * attn                                       (attention, then residual)

Deformable conv (Dai et al. 2017, v1): y[p] = b + sum_k W_k^T x(p + k + dp_k(p)), k over the
9 taps of a 3x3 kernel, x(.) read by bilinear interpolation with zero outside the image
(JAX gathers), the offsets dp `[H, W, 9, 2]` predicted by a
zero-initialised conv 3x3, so at initialisation it is a plain 3x3 convolution.

Our reading of the paper, where it is silent (docs/S3NET.md): every layer has C channels
(the paper gives no width; 100 as Kim et al. and SGSCN); BN normalises with the image's own
statistics, as everywhere in this project; the auxiliary head is a second 1x1 head on the
same features, and it is what L_AT's transformed branch reads (the main head gives the
pseudo-labels). Initialisation is PyTorch's default (as `network`), offsets zero.

Parameters, for C_in input channels, C channels and B blocks (stated in docs/S3NET.md, tested):
    stem 9 C_in C + 3 C; I-LKA per block (25 + 9 + 25 + 49) C + 4 C + 3 C^2 + C, BN 2 C;
    deformable 9 C^2 + C + 18 * 9 C + 18, BN 2 C; two heads 2 (C^2 + 3 C).
    RGB, C = 100, B = 1 (the preset): 171,618 (SGSCN's default network: 103,600).

2D only: the deformable convolution and L_AT's warps sample 2D images; a 3D input raises a
ValueError. The depthwise convolutions (`depthwise_conv`) are rank-generic.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from sgscn_jax.core import conv
from sgscn_jax.core.layers import ImageBatchNorm, SpatialConv, per_channel, torch_uniform


def depthwise_conv(x: jax.Array, kernel: jax.Array, dilation: int = 1) -> jax.Array:
  """Depthwise 'same' convolution, zero padding, any spatial rank: `[*spatial, C]`.

  y[p, c] = sum_{o in {0..k-1}^r} x_pad[p + d o, c] kernel[o, c],  kernel `[k]*r + [C]`,
  d the dilation, x zero-padded by d (k // 2) on every side.

  The forward pass is the k^r shifted products written out as one sum, which XLA fuses
  into a single loop over the output (measured, 256x256x100 on this 2-core machine under
  load: 50 ms for 5x5 and 64 ms for 7x7 d3, against 261 / 303 ms for a `lax.scan` over the
  taps and 782 / 1283 ms for XLA:CPU's grouped convolution, `feature_group_count = C`).
  The backward pass is written out (`_depthwise_bwd`): dx is the same depthwise
  convolution of the output gradient g with the flipped kernel; dkernel[o] = sum_p
  x_pad[p + d o] g[p], one reduction per tap in a `lax.scan` (a reduction, not XLA's
  grouped-convolution weight gradient, which was 12x slower; unrolled, the 49 reductions
  were 1.8x slower than the scan), and no per-tap view is kept for the backward pass.
  """
  return _depthwise(x, kernel, dilation)


def _materialised(a: jax.Array) -> jax.Array:
  """`a` written to memory once (`lax.optimization_barrier`) before the many shifted reads of
  a depthwise or deformable conv: without it XLA fuses a cheap producer (a BatchNorm, the
  I-LKA attention product, a bias add) into every read and recomputes it per tap and shift."""
  return lax.optimization_barrier(a)


def _tap_offsets(k: int, rank: int):
  return list(itertools.product(range(k), repeat=rank))


def _depthwise_forward(x, kernel, dilation):
  x = _materialised(x)
  rank = x.ndim - 1
  k = kernel.shape[0]
  half = dilation * (k // 2)
  x_pad = jnp.pad(x, [(half, half)] * rank + [(0, 0)])
  y = jnp.zeros_like(x)
  for offset in _tap_offsets(k, rank):
    view = x_pad[tuple(slice(dilation * o, dilation * o + n)
                       for o, n in zip(offset, x.shape[:-1]))]
    y = y + view * per_channel(kernel[offset], x.ndim)
  return y


_depthwise = jax.custom_vjp(_depthwise_forward, nondiff_argnums=(2,))


def _depthwise_fwd(x, kernel, dilation):
  return _depthwise_forward(x, kernel, dilation), (x, kernel)


def _depthwise_bwd(dilation, residuals, g):
  x, kernel = residuals
  x, g = _materialised(x), _materialised(g)
  rank = x.ndim - 1
  k = kernel.shape[0]
  half = dilation * (k // 2)
  dx = _depthwise_forward(g, jnp.flip(kernel, axis=tuple(range(rank))), dilation)
  x_pad = jnp.pad(x, [(half, half)] * rank + [(0, 0)])
  offsets = jnp.asarray(_tap_offsets(k, rank), jnp.int32)
  axes = tuple(range(rank))

  def tap(carry, offset):
    view = lax.dynamic_slice(x_pad, tuple(dilation * offset) + (0,), x.shape)
    return carry, jnp.sum(view * g, axis=axes)

  _, dk = lax.scan(tap, None, offsets)
  return dx, dk.reshape(kernel.shape)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def deformable_conv(x: jax.Array, offsets: jax.Array, kernel: jax.Array,
                    bound: Optional[float] = None) -> jax.Array:
  """Deformable convolution v1 of one 2D image, no bias: `[H, W, C_out]`.

  y[p] = sum_k kernel[k]^T x(p + k - (K // 2) + offsets[p, k]), k over the K x K taps in
  row-major order, x(.) bilinear with zeros outside the image.

  The bilinear read is one gather per tap of a packed copy of x holding each pixel's 2x2
  neighbourhood (`[H+2, W+2, 4 C_in]`, zero-padded by one pixel; positions are clipped
  to [-1, H] x [-1, W], where every corner is padding, so far-outside reads are zero), its
  gradient one scatter-add per tap: 25 % faster than four gathers of `[P, C_in]` rows
  (`warp.sample_bilinear`, to which it is equal). The taps run as a `lax.scan` whose body
  is rematerialised in the backward pass (`jax.checkpoint`): only each tap's running sum
  is kept, not its gathered `[P, 4 C_in]` corners.

  Args:
    x: `[H, W, C_in]`.
    offsets: `[H, W, K * K, 2]` (row, col) offsets in pixels, one pair per tap.
    kernel: `[K, K, C_in, C_out]` (the layout of `conv.conv_same`; zero offsets give
      exactly `conv.conv_same(x, kernel)`).
    bound: None (the exact v1 read above, any offsets) or R > 0: the bounded-offset form
      `bounded_deformable_conv` with radius ceil(R), equal to v1 for |offsets| <= ceil(R)
      (the caller squashes the offsets into [-R, R], `bound_offsets`).
  """
  if x.ndim != 3:
    raise ValueError(f"the deformable convolution is 2D only: got input shape {x.shape}")
  if bound is not None:
    return bounded_deformable_conv(x, offsets, kernel, math.ceil(bound))
  h, w, c = x.shape
  k = kernel.shape[0]
  xp = jnp.pad(x, ((1, 2), (1, 2), (0, 0)))
  # packed[i, j] = x at (i-1, j-1), (i-1, j), (i, j-1), (i, j): the 2x2 block below-right
  packed = jnp.concatenate([xp[:-1, :-1], xp[:-1, 1:], xp[1:, :-1], xp[1:, 1:]], axis=-1)
  flat = packed.reshape((h + 2) * (w + 2), 4 * c)
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=x.dtype), jnp.arange(w, dtype=x.dtype),
                            indexing="ij")
  base = jnp.asarray(list(itertools.product(range(k), repeat=2)), x.dtype) - (k // 2)

  def tap(y, args):
    shift, offset, weights = args                     # [2], [H, W, 2], [C_in, C_out]
    r = jnp.clip(rows + shift[0] + offset[..., 0], -1.0, float(h))
    q = jnp.clip(cols + shift[1] + offset[..., 1], -1.0, float(w))
    r0, q0 = jnp.floor(r), jnp.floor(q)
    fr, fq = r - r0, q - q0
    index = (r0.astype(jnp.int32) + 1) * (w + 2) + q0.astype(jnp.int32) + 1
    corners = jnp.take(flat, index, axis=0).reshape(h, w, 4, c)
    bilinear = jnp.stack([(1 - fr) * (1 - fq), (1 - fr) * fq, fr * (1 - fq), fr * fq], -1)
    sample = jnp.einsum("hwkc,hwk->hwc", corners, bilinear)
    return y + sample @ weights, None

  y0 = jnp.zeros((h, w, kernel.shape[-1]), x.dtype)
  y, _ = lax.scan(jax.checkpoint(tap), y0, (base, jnp.moveaxis(offsets, 2, 0),
                            kernel.reshape(k * k, c, kernel.shape[-1])))
  return y


def bound_offsets(raw: jax.Array, bound: float, squash: str = "tanh") -> jax.Array:
  """Offsets squashed into [-R, R], R = `bound`: R tanh(raw / R) ("tanh": slope 1 at 0, so
  the zero-initialised offsets start as v1's) or clip(raw, -R, R) ("clip": the identity on
  [-R, R], where the bounded read equals v1's)."""
  if squash == "tanh":
    return bound * jnp.tanh(raw / bound)
  if squash == "clip":
    return jnp.clip(raw, -bound, bound)
  raise ValueError(f"squash must be 'tanh' or 'clip', got {squash!r}")


def tent(t: jax.Array) -> jax.Array:
  """The bilinear hat, tent(t) = max(0, 1 - |t|)."""
  return jnp.maximum(0.0, 1.0 - jnp.abs(t))


def tent_slope(t: jax.Array) -> jax.Array:
  """d tent / dt, taken from the right at the kinks (+1 on [-1, 0), -1 on [0, 1), 0 else): the
  derivative v1 gets from autodiff of its floor-based bilinear weights."""
  return jnp.where((t >= -1.0) & (t < 0.0), 1.0, jnp.where((t >= 0.0) & (t < 1.0), -1.0, 0.0))


def bounded_deformable_conv(x: jax.Array, offsets: jax.Array, kernel: jax.Array,
                            radius: int = 1) -> jax.Array:
  """The deformable convolution with offsets in [-R, R], R = `radius`: `[H, W, C_out]`.

  For |d| <= R the bilinear read is a fixed sum of integer shifts,

      x(p + k + d) = sum_{s in {-R..R}^2} tent(d_row - s_row) tent(d_col - s_col) x(p + k + s),

  so with a_{k,s}[p] = tent(dp_k,row[p] - s_row) tent(dp_k,col[p] - s_col) (per pixel, tap,
  shift; at most 4 of the (2R + 1)^2 are non-zero) the tap's sample is
  sample_k[p] = sum_s a_{k,s}[p] x_pad[p + k + s] (zero padding: zero outside the image,
  as v1) and y = [sample_0 .. sample_{K^2-1}] @ kernel.reshape(K^2 C_in, C_out).
  No gather and no scatter: every sample is one fused loop over shifted views of x, the
  kernel one `[P, K^2 C_in] @ [K^2 C_in, C_out]` matmul. Equal to `deformable_conv(x,
  offsets, kernel)` (v1) when |offsets| <= R (tested); beyond R the read is cut off.

  Backward pass (written out, `jax.custom_vjp`; the samples are recomputed, not kept):
      D = g @ kernel^T                     `[P, K^2 C_in]`, D_k = dL/dsample_k
      dkernel = [sample_k]^T g             one `[K^2 C_in, P] @ [P, C_out]` matmul
      dx[q] = sum_{k,s} a_{k,s}[q - k - s] D_k[q - k - s]      (the transposed shift sum)
      d dp_k,row[p] = sum_s tent'(dp_row - s_row) tent(dp_col - s_col) <x_pad[p + k + s], D_k[p]>
      d dp_k,col[p] = sum_s tent(dp_row - s_row) tent'(dp_col - s_col) <x_pad[p + k + s], D_k[p]>
  with tent' = `tent_slope`.

  Args:
    x: `[H, W, C_in]`; offsets: `[H, W, K * K, 2]`; kernel: `[K, K, C_in, C_out]`
    (as `deformable_conv`); radius: R, a positive int.
  """
  if x.ndim != 3:
    raise ValueError(f"the deformable convolution is 2D only: got input shape {x.shape}")
  if radius < 1:
    raise ValueError(f"radius must be a positive integer, got {radius}")
  return _bounded(x, offsets, kernel, int(radius))


def _shift_taps(k: int, radius: int):
  """`(tap, (row, col) displacement k - K // 2 + s, (row shift index, col shift index))`."""
  out = []
  for t, (i, j) in enumerate(itertools.product(range(k), repeat=2)):
    for a, sr in enumerate(range(-radius, radius + 1)):
      for b, sc in enumerate(range(-radius, radius + 1)):
        out.append((t, (i - k // 2 + sr, j - k // 2 + sc), (a, b)))
  return out


def _pad2(a: jax.Array, p: int) -> jax.Array:
  return jnp.pad(a, ((p, p), (p, p)) + ((0, 0),) * (a.ndim - 2))


def _window(a_pad: jax.Array, p: int, u, h: int, w: int) -> jax.Array:
  """`a[q + u]` for q over the `[h, w]` image, from `a` zero-padded by `p`."""
  return a_pad[p + u[0]:p + u[0] + h, p + u[1]:p + u[1] + w]


def _shift_weights(offsets: jax.Array, radius: int, slope: int = -1) -> jax.Array:
  """a_{k,s}[p] for every tap k and shift s, `[H, W, T (2R + 1)^2]` in `_shift_taps` order:
  tent(d_row - s_row) tent(d_col - s_col), with tent' on the row (`slope` 0) or the column
  (`slope` 1) for the offset gradient. Computed once and kept as an array
  (`lax.optimization_barrier`): fused into every one of the (2R + 1)^2 K^2 reads of x,
  the weights were recomputed per channel."""
  shifts = jnp.arange(-radius, radius + 1, dtype=offsets.dtype)
  t = offsets[..., None] - shifts.reshape((1,) * offsets.ndim + (-1,))
  rows = tent_slope(t[..., 0, :]) if slope == 0 else tent(t[..., 0, :])   # [H, W, T, 2R+1]
  cols = tent_slope(t[..., 1, :]) if slope == 1 else tent(t[..., 1, :])
  h, w = offsets.shape[:2]
  return lax.optimization_barrier((rows[..., :, None] * cols[..., None, :]).reshape(h, w, -1))


def _bounded_samples(x: jax.Array, weights: jax.Array, k: int, radius: int):
  """The K^2 tap sums sample_k[p] = sum_s weights[p, (k, s)] x_pad[p + k + s], each `[H, W, C]`
  (one fused loop each; `weights` from `_shift_weights`)."""
  h, w, _ = x.shape
  p = k // 2 + radius
  xp = _pad2(x, p)
  samples = [0.0] * (k * k)
  for n, (t, u, _) in enumerate(_shift_taps(k, radius)):
    samples[t] = samples[t] + weights[:, :, n:n + 1] * _window(xp, p, u, h, w)
  return samples


def _bounded_forward(x, offsets, kernel, radius):
  x = _materialised(x)
  h, w, c_in = x.shape
  k, c_out = kernel.shape[0], kernel.shape[-1]
  samples = _bounded_samples(x, _shift_weights(offsets, radius), k, radius)
  stacked = jnp.stack(samples, axis=2).reshape(h, w, k * k * c_in)        # [H, W, T C_in]
  return stacked @ kernel.reshape(k * k * c_in, c_out)


_bounded = jax.custom_vjp(_bounded_forward, nondiff_argnums=(3,))


def _bounded_fwd(x, offsets, kernel, radius):
  return _bounded_forward(x, offsets, kernel, radius), (x, offsets, kernel)


def _bounded_bwd(radius, residuals, g):
  x, offsets, kernel = residuals
  x, g = _materialised(x), _materialised(g)
  h, w, c_in = x.shape
  k, c_out = kernel.shape[0], kernel.shape[-1]
  n, taps = h * w, k * k
  weights = _shift_weights(offsets, radius)
  stacked = jnp.stack(_bounded_samples(x, weights, k, radius), axis=2).reshape(n, -1)
  flat_kernel = kernel.reshape(taps * c_in, c_out)
  dkernel = (stacked.T @ g.reshape(n, c_out)).reshape(kernel.shape)
  d = (g @ flat_kernel.T).reshape(h, w, taps, c_in)                   # D_k = dL/dsample_k
  # dx: each term a_{k,s} D_k moved by +(k + s), written as reads of the padded arrays
  p = k // 2 + radius
  d_pad, w_pad = _pad2(d, p), _pad2(weights, p)
  dx = jnp.zeros_like(x)
  for m, (t, u, _) in enumerate(_shift_taps(k, radius)):
    back = (-u[0], -u[1])
    weight = _window(w_pad, p, back, h, w)[:, :, m:m + 1]
    dx = dx + weight * _window(d_pad, p, back, h, w)[:, :, t]
  # offsets: <d sample_k / d dp_k, D_k>, the derivative sums kept as arrays before the dot
  parts = [jnp.stack(_bounded_samples(x, _shift_weights(offsets, radius, axis), k, radius), 2)
           for axis in (0, 1)]
  derivative = lax.optimization_barrier(jnp.stack(parts, axis=3))      # [H, W, T, 2, C_in]
  doffsets = jnp.sum(derivative * d[:, :, :, None, :], axis=-1)
  return dx, doffsets, dkernel


_bounded.defvjp(_bounded_fwd, _bounded_bwd)


class DepthwiseConv(nn.Module):
  """Depthwise conv with bias, kernel `kernel_size`^r, `dilation` (PyTorch init, fan_in k^r)."""
  kernel_size: int
  dilation: int = 1

  @nn.compact
  def __call__(self, x):
    rank, c = x.ndim - 1, x.shape[-1]
    fan_in = self.kernel_size ** rank
    kernel = self.param("kernel", torch_uniform(fan_in), (self.kernel_size,) * rank + (c,))
    bias = self.param("bias", torch_uniform(fan_in), (c,))
    return depthwise_conv(x, kernel, self.dilation) + per_channel(bias, x.ndim)


class InceptionLKA(nn.Module):
  """I-LKA: `x + x * conv1x1(concat[dw3 d1, dw5 d2, dw7 d3](dw5(x)))` (module docstring)."""

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    a = DepthwiseConv(5, name="dw5")(x)
    branches = [DepthwiseConv(3, 1, name="dw3_d1")(a), DepthwiseConv(5, 2, name="dw5_d2")(a),
                DepthwiseConv(7, 3, name="dw7_d3")(a)]
    attn = SpatialConv(c, 1, name="mix")(jnp.concatenate(branches, axis=-1))
    return x + x * attn


class DeformableConv(nn.Module):
  """Deformable conv 3x3 with bias; offsets `[H, W, 9, 2]` from a zero-initialised conv 3x3;
  with `offset_bound` R, the offsets are R tanh(raw / R) and the read is the bounded form."""
  features: int
  kernel_size: int = 3
  offset_bound: Optional[float] = None

  @nn.compact
  def __call__(self, x):
    c_in, k = x.shape[-1], self.kernel_size
    n_offsets = 2 * k * k
    offset_kernel = self.param("offset_kernel", nn.initializers.zeros,
                               (k, k, c_in, n_offsets))
    offset_bias = self.param("offset_bias", nn.initializers.zeros, (n_offsets,))
    fan_in = c_in * k * k
    kernel = self.param("kernel", torch_uniform(fan_in), (k, k, c_in, self.features))
    bias = self.param("bias", torch_uniform(fan_in), (self.features,))
    offsets = conv.conv_same(x, offset_kernel) + per_channel(offset_bias, x.ndim)
    offsets = offsets.reshape(x.shape[:-1] + (k * k, 2))
    if self.offset_bound is not None:
      offsets = bound_offsets(offsets, self.offset_bound)
    y = deformable_conv(x, offsets, kernel, self.offset_bound)
    return y + per_channel(bias, y.ndim)


class S3Net(nn.Module):
  """S3-Net's F: image `[H, W, C_in]` -> S `[H, W, n_channels]` (`head="main"`) or the
  auxiliary head (`head="aux"`); see the module docstring."""
  n_channels: int = 100
  n_blocks: int = 1
  bn_epsilon: float = 1e-5
  padding: str = "zeros"
  offset_bound: Optional[float] = None

  @nn.compact
  def __call__(self, image, head: str = "main"):
    if image.ndim != 3:
      raise ValueError("architecture 's3net' is 2D only (its deformable convolution and L_AT "
                       f"sample 2D images): expected [H, W, C_in], got shape {image.shape}")
    if head not in ("main", "aux"):
      raise ValueError(f"head must be 'main' or 'aux', got {head!r}")
    c = self.n_channels
    h = SpatialConv(c, 3, self.padding, name="stem")(image)
    h = ImageBatchNorm(self.bn_epsilon, name="bn_stem")(nn.relu(h))
    for i in range(self.n_blocks):
      h = ImageBatchNorm(self.bn_epsilon, name=f"bn_ilka{i}")(InceptionLKA(name=f"ilka{i}")(h))
    h = DeformableConv(c, offset_bound=self.offset_bound, name="deform")(h)
    h = ImageBatchNorm(self.bn_epsilon, name="bn_deform")(nn.relu(h))
    # Both heads always exist (so `init` creates both); XLA drops the unused one under jit.
    main = ImageBatchNorm(self.bn_epsilon, name="bn_main")(SpatialConv(c, 1, name="main")(h))
    aux = ImageBatchNorm(self.bn_epsilon, name="bn_aux")(SpatialConv(c, 1, name="aux")(h))
    return main if head == "main" else aux


def parameter_count_formula(c_in: int, c: int, n_blocks: int) -> int:
  """The number of parameters of `S3Net` (module docstring), counted by hand."""
  stem = 9 * c_in * c + c + 2 * c
  block = (25 + 9 + 25 + 49) * c + 4 * c + 3 * c * c + c + 2 * c
  deform = 9 * c * c + c + 18 * 9 * c + 18 + 2 * c
  heads = 2 * (c * c + c + 2 * c)
  return stem + n_blocks * block + deform + heads
