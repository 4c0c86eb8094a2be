r"""The same SGSCN loop in PyTorch, for the benchmark's side-by-side (torch is not a dependency).

Same network, losses, optimiser and image as `sgscn_jax` with the default `Config`:

  network  n_conv x [conv 3x3 (-> C) -> ReLU -> BN(batch statistics)] -> conv 1x1 -> BN
           (PyTorch's default initialisation, as `sgscn_jax.core.network`)
  loss     w_ce L_ce(S, argmax S) + w_ss L_ss + w_cc L_cc
           (the definitions of sgscn_jax.core.losses)
  update   SGD, learning rate 0.1, momentum 0.9, every iteration also counts the argmax labels
           (the published loop's `torch.unique`), eager mode, NCHW float32, as the published code.

`time_iterations(image, iterations, ...)` runs the loop once and returns wall seconds;
the benchmark takes (t(n2) - t(n1)) / (n2 - n1) so set-up is not counted.

S3-Net (`time_s3net_iterations`, for `experiments.benchmark --method s3net`): the network of
`sgscn_jax.core.s3net` (stem conv 3x3 -> ReLU -> BN; I-LKA blocks -> BN; a deformable conv 3x3,
`torchvision.ops.deform_conv2d`, offsets from a zero-initialised conv 3x3 -> ReLU -> BN; main and
auxiliary 1x1 heads -> BN) and the losses of the preset: w_ce L_ce + w_s L_S (edge-aware spatial,
`losses.edge_aware_spatial_loss`) + w_at L_AT (symmetric KL, `consistency.transform_consistency`:
the auxiliary head on the warped image against the warped softmax of S, warps by
`torch.nn.functional.grid_sample`, bilinear with zeros outside, one random affine map per
iteration drawn as `warp.random_affine` draws it). With `offset_bound` R the offsets are
R tanh(raw / R), as the JAX network's bounded form (torchvision still reads them exactly).

  pip install torch==2.13.0 torchvision   # `pip install .[bench]`; torchvision's PyPI wheels
                                          # link the CUDA build of torch (see docs/S3NET.md)
"""

from __future__ import annotations

import math
import time

import numpy as np


def _network(torch, c_in: int, n_channels: int, n_conv: int):
  nn = torch.nn
  layers = []
  c = c_in
  for _ in range(n_conv):
    layers += [nn.Conv2d(c, n_channels, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(n_channels)]
    c = n_channels
  layers += [nn.Conv2d(n_channels, n_channels, 1), nn.BatchNorm2d(n_channels)]
  return nn.Sequential(*layers)


def _losses(torch, response, coordinates, weights):
  """response [1, C, H, W]; coordinates [H*W, 2] in [-1, 1]; the sgscn_jax.core.losses terms."""
  f = torch.nn.functional
  c = response.shape[1]
  flat = response[0].reshape(c, -1).T                        # [P, C]
  targets = flat.argmax(dim=1)
  total = weights["cross_entropy"] * f.cross_entropy(flat, targets)
  if weights.get("sparse_spatial"):
    ss = ((response[..., 1:, :] - response[..., :-1, :]).abs().mean()
          + (response[..., 1:] - response[..., :-1]).abs().mean())
    total = total + weights["sparse_spatial"] * ss
  if weights.get("context_consistency"):
    q = torch.softmax(flat, dim=1)                           # [P, C]
    mass = q.sum(0).clamp_min(1e-6)
    mu = (q.T @ coordinates) / mass[:, None]                 # [C, 2]
    second = (q.T @ (coordinates ** 2).sum(1)) / mass
    var = (second - (mu ** 2).sum(1)).clamp(0.0, 2.0)
    total = total + weights["context_consistency"] * var.mean() / 2.0
  return total, targets


def time_iterations(image: np.ndarray, iterations: int, *, n_channels: int = 100, n_conv: int = 2,
                    weights=None, lr: float = 0.1, momentum: float = 0.9, seed: int = 0,
                    threads: int | None = None) -> float:
  """Wall seconds of `iterations` SGSCN updates on `image` `[H, W, C_in]` in PyTorch eager."""
  import torch
  if threads:
    torch.set_num_threads(threads)
  weights = weights or {"cross_entropy": 1.0, "sparse_spatial": 5.0, "context_consistency": 1.0}
  torch.manual_seed(seed)
  h, w, c_in = image.shape
  model = _network(torch, c_in, n_channels, n_conv)
  model.train()
  opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
  x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32))
  ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
  coordinates = torch.from_numpy(np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float32))
  start = time.perf_counter()
  for _ in range(iterations):
    opt.zero_grad()
    response = model(x)
    loss, targets = _losses(torch, response, coordinates, weights)
    loss.backward()
    opt.step()
    int(torch.unique(targets).numel())                       # the published label count
  return time.perf_counter() - start


def _s3net(torch, c_in: int, c: int, n_blocks: int, offset_bound=None):
  """S3-Net's network (`sgscn_jax.core.s3net`) in PyTorch; returns the module."""
  nn = torch.nn
  from torchvision.ops import deform_conv2d

  def dw(k, d):
    return nn.Conv2d(c, c, k, padding=d * (k // 2), dilation=d, groups=c)

  class ILKA(nn.Module):
    def __init__(self):
      super().__init__()
      self.dw5, self.dw3_d1, self.dw5_d2, self.dw7_d3 = dw(5, 1), dw(3, 1), dw(5, 2), dw(7, 3)
      self.mix = nn.Conv2d(3 * c, c, 1)

    def forward(self, x):
      a = self.dw5(x)
      attn = self.mix(torch.cat([self.dw3_d1(a), self.dw5_d2(a), self.dw7_d3(a)], 1))
      return x + x * attn

  class Deform(nn.Module):
    def __init__(self):
      super().__init__()
      self.offset = nn.Conv2d(c, 18, 3, padding=1)
      nn.init.zeros_(self.offset.weight)
      nn.init.zeros_(self.offset.bias)
      self.conv = nn.Conv2d(c, c, 3, padding=1)   # holds the weight and bias (PyTorch init)

    def forward(self, x):
      offsets = self.offset(x)                    # [1, 18, H, W]: (row, col) per tap
      if offset_bound is not None:
        offsets = offset_bound * torch.tanh(offsets / offset_bound)
      return deform_conv2d(x, offsets, self.conv.weight, self.conv.bias, padding=1)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem, self.bn_stem = nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c)
      self.blocks = nn.ModuleList(ILKA() for _ in range(n_blocks))
      self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(n_blocks))
      self.deform, self.bn_deform = Deform(), nn.BatchNorm2d(c)
      self.main, self.bn_main = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)
      self.aux, self.bn_aux = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x, head="main"):
      h = self.bn_stem(torch.relu(self.stem(x)))
      for block, bn in zip(self.blocks, self.bns):
        h = bn(block(h))
      h = self.bn_deform(torch.relu(self.deform(h)))
      return self.bn_main(self.main(h)) if head == "main" else self.bn_aux(self.aux(h))

  return Net()


def _random_affine(rng, h: int, w: int):
  """`warp.random_affine`'s distribution: (matrix [2, 2], shift [2]) of the output-to-input
  map x = c + M (y - c) + t, (row, col) pixels."""
  angle = rng.uniform(-math.pi / 4, math.pi / 4)
  scale = math.exp(rng.uniform(-math.log(1.25), math.log(1.25)))
  flip = -1.0 if rng.uniform() < 0.5 else 1.0
  rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  matrix = scale * rotation * np.array([1.0, flip])[None, :]
  shift = rng.uniform(-0.1, 0.1, size=2) * np.array([h, w])
  return matrix, shift


def _warp_grid(torch, matrix, shift, h: int, w: int):
  """`grid_sample`'s grid `[1, H, W, 2]` (x = col, y = row in [-1, 1], align_corners=True)
  for the map, and the valid mask `[H, W]` (source inside the image, `warp.valid_mask`)."""
  rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                           indexing="ij")
  centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
  y = np.stack([rows, cols], -1) - centre
  src = y @ matrix.T + centre + shift                                   # [H, W, 2] (row, col)
  tol = 1e-4
  valid = ((src[..., 0] >= -tol) & (src[..., 0] <= h - 1 + tol)
           & (src[..., 1] >= -tol) & (src[..., 1] <= w - 1 + tol))
  grid = np.stack([2 * src[..., 1] / (w - 1) - 1, 2 * src[..., 0] / (h - 1) - 1], -1)
  return (torch.from_numpy(grid[None].astype(np.float32)),
          torch.from_numpy(valid.astype(np.float32)))


def _s3net_losses(torch, model, x, response, edge, weights, grid, mask):
  """w_ce L_ce + w_s L_S + w_at L_AT (KL) for S `[1, C, H, W]`; returns (total, targets)."""
  f = torch.nn.functional
  c = response.shape[1]
  flat = response[0].reshape(c, -1).T
  targets = flat.argmax(dim=1)
  total = weights["cross_entropy"] * f.cross_entropy(flat, targets)
  if weights.get("edge_aware_spatial"):
    w_rows, w_cols = edge
    ls = ((w_rows * (response[..., 1:, :] - response[..., :-1, :]).abs()).mean()
          + (w_cols * (response[..., 1:] - response[..., :-1]).abs()).mean())
    total = total + weights["edge_aware_spatial"] * ls
  if weights.get("transform_consistency_kl"):
    kw = dict(mode="bilinear", padding_mode="zeros", align_corners=True)
    p_warped = f.grid_sample(torch.softmax(response, 1), grid, **kw)
    log_q = torch.log_softmax(model(f.grid_sample(x, grid, **kw), head="aux"), 1)
    log_p = torch.log(p_warped.clamp_min(1e-12))
    per_pixel = ((p_warped - log_q.exp()) * (log_p - log_q)).sum(1)[0]
    at = (mask * per_pixel).sum() / mask.sum().clamp_min(1.0)
    total = total + weights["transform_consistency_kl"] * at
  return total, targets


def time_s3net_iterations(image: np.ndarray, iterations: int, *, n_channels: int = 100,
                          n_blocks: int = 1, weights=None, lr: float = 0.2,
                          momentum: float = 0.9, offset_bound=None, seed: int = 0,
                          threads: int | None = None) -> float:
  """Wall seconds of `iterations` S3-Net updates on `image` `[H, W, C_in]` in PyTorch eager
  (the network and losses of the module docstring; defaults: the s3net preset)."""
  import torch
  if threads:
    torch.set_num_threads(threads)
  weights = weights or {"cross_entropy": 3.5, "transform_consistency_kl": 0.2,
                        "edge_aware_spatial": 4.0}
  torch.manual_seed(seed)
  rng = np.random.default_rng(seed)
  h, w, c_in = image.shape
  model = _s3net(torch, c_in, n_channels, n_blocks, offset_bound)
  model.train()
  opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
  x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32))
  sigma = 0.1                                                      # losses.EDGE_SIGMA
  edge = (torch.exp(-((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum(1, keepdim=True) / sigma ** 2),
          torch.exp(-((x[..., 1:] - x[..., :-1]) ** 2).sum(1, keepdim=True) / sigma ** 2))
  start = time.perf_counter()
  for _ in range(iterations):
    grid, mask = _warp_grid(torch, *_random_affine(rng, h, w), h, w)
    opt.zero_grad()
    response = model(x)
    loss, targets = _s3net_losses(torch, model, x, response, edge, weights, grid, mask)
    loss.backward()
    opt.step()
    int(torch.unique(targets).numel())
  return time.perf_counter() - start
