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

  pip install torch==2.13.0      # the CPU build on this machine
"""

from __future__ import annotations

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
