"""The loss terms of SGSCN, each a pure function `(response, image, coordinates) -> scalar`.

Shapes, for spatial rank r (2 for images, 3 for volumes), P pixels, C channels:
  response     S  `[*spatial, C]`   the network's output (BN-normalised logits)
  image           `[*spatial, C_in]` the input, float in [0, 1]
  coordinates  x  `[*spatial, r]`   each pixel's position, every axis mapped to [-1, 1]

The total loss is `sum_name weight[name] * LOSS_TERMS[name](S, image, x)` over the weights in
`Config.loss_weights`. A new term is one function registered with `register_loss_term`.

A term that must run the network again (S3-Net's transformation consistency L_AT, on a
warped copy of the image) is registered with `needs_context=True` and is then called as
`fn(S, image, x, context)` with a `LossContext`: the network as a function of the image
(closing over the parameters being differentiated), this iteration's PRNG key and the step.
The loop builds a context only when an active term needs one, so a configuration without
such a term runs exactly the program it ran before the context existed.
"""

from __future__ import annotations

import types

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

LossTerm = Callable[..., jax.Array]


class LossContext(NamedTuple):
  """What a context term (`register_loss_term(..., needs_context=True)`) gets besides S.

  apply: `apply(image [*spatial, C_in]) -> [*spatial, C]`, the network's *consistency
    head* with the parameters being differentiated (SGSCN: the response map itself;
    S3-Net: its auxiliary head, `network.apply_consistency_head`).
  key: this iteration's typed PRNG key, `fold_in(loss key of the image, step)`.
  step: `[]` int32, the iteration.
  """
  apply: Callable[[jax.Array], jax.Array]
  key: jax.Array
  step: jax.Array


def cluster_labels(response: jax.Array) -> jax.Array:
  """The pseudo-labels C = argmax_c S[..., c], int32 `[*spatial]`."""
  return jnp.argmax(response, axis=-1).astype(jnp.int32)


def cross_entropy_loss(response, image, coordinates):
  """Self-labelling cross-entropy, SGSCN's L_ce (paper Eq. 1).

  L_ce = -(1/P) sum_p log softmax(S_p)[C_p],  C_p = argmax_c S_p,c held constant
  (no gradient flows through the targets).
  """
  del image, coordinates
  targets = jax.lax.stop_gradient(cluster_labels(response))
  log_probs = jax.nn.log_softmax(response, axis=-1)
  picked = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)
  return -jnp.mean(picked)


def sparse_spatial_loss(response, image, coordinates):
  """Sparse spatial loss L_ss (paper Eq. 2): L1 of the response's finite differences.

  L_ss = sum_a mean_{p, c} |S[p + e_a, c] - S[p, c]|  over the r spatial axes a
  (means over all P' x C differences of that axis, as the published code; in 2D the
  published `lhpy + lhpz`).

  Gradient (written out, recomputed from S in the backward pass so that no difference
  array is kept alive): with s_a = sign(S[p + e_a] - S[p]) / n_a (n_a differences),
  dL/dS[p] = sum_a (s_a[p - e_a] - s_a[p]), each term zero where p +- e_a leaves the image.
  """
  del image, coordinates
  return _sparse_spatial(response)


@jax.custom_vjp
def _sparse_spatial(response):
  total = 0.0
  for axis in range(response.ndim - 1):
    total = total + jnp.mean(jnp.abs(jnp.diff(response, axis=axis)))
  return total


def _ss_fwd(response):
  return _sparse_spatial(response), response


def _ss_bwd(response, g):
  grad = jnp.zeros_like(response)
  for axis in range(response.ndim - 1):
    d = jnp.diff(response, axis=axis)
    s = jnp.sign(d) * (g / d.size)
    before = [(0, 0)] * response.ndim
    after = [(0, 0)] * response.ndim
    before[axis] = (1, 0)
    after[axis] = (0, 1)
    grad = grad + jnp.pad(s, before) - jnp.pad(s, after)
  return (grad,)


_sparse_spatial.defvjp(_ss_fwd, _ss_bwd)


# sigma of the edge weights exp(-|I[p + e_a] - I[p]|^2 / sigma^2) of `edge_aware_spatial`,
# for images in [0, 1]: a step of 0.1 in every channel of an RGB image (|dI|^2 = 0.03)
# keeps weight exp(-3) = 0.05, sensor noise of 0.02 per channel keeps 0.89.
EDGE_SIGMA = 0.1


def edge_weights(image: jax.Array, sigma: float = EDGE_SIGMA) -> Tuple[jax.Array, ...]:
  """Per spatial axis a, w_a[p] = exp(-|I[p + e_a] - I[p]|^2 / sigma^2): `[*spatial', 1]`.

  The image gradient is the forward difference along a, and |.|^2 sums its squares over
  the input channels; w_a has one entry less than the image along a (the n_a pairs).
  """
  return tuple(
      jnp.exp(-jnp.sum(jnp.square(jnp.diff(image, axis=a)), axis=-1, keepdims=True)
              / sigma ** 2) for a in range(image.ndim - 1))


def edge_aware_spatial_loss(response, image, coordinates, sigma: float = EDGE_SIGMA):
  """S3-Net's spatial consistency L_S, done differentiably (edge-aware smoothness).

  L_S = sum_a mean_{p, c} w_a[p] |S[p + e_a, c] - S[p, c]|,
  w_a[p] = exp(-|I[p + e_a] - I[p]|^2 / sigma^2)             (`edge_weights`)

  over the r spatial axes a (rank-generic), the mean over the n_a x C differences of axis
  a, as `sparse_spatial_loss` (which is this loss with every w = 1). S is pushed to be
  constant inside regions of even colour and left free across image edges. The weights
  depend on the image only (no gradient flows into the image). The published S3-Net code
  computes its edge term in NumPy, outside the graph: no gradient reached the network.

  Gradient (written out, recomputed from S in the backward pass as for L_ss): with
  s_a = w_a sign(S[p + e_a] - S[p]) / (n_a C), dL/dS[p] = sum_a (s_a[p - e_a] - s_a[p]).
  """
  del coordinates
  weights = jax.lax.stop_gradient(edge_weights(image.astype(response.dtype), sigma))
  return _edge_aware_spatial(response, weights)


@jax.custom_vjp
def _edge_aware_spatial(response, weights):
  total = 0.0
  for axis, w in enumerate(weights):
    d = jnp.abs(jnp.diff(response, axis=axis))
    total = total + jnp.mean(d * jnp.broadcast_to(w, d.shape))
  return total


def _ea_fwd(response, weights):
  return _edge_aware_spatial(response, weights), (response, weights)


def _ea_bwd(residuals, g):
  response, weights = residuals
  grad = jnp.zeros_like(response)
  for axis, w in enumerate(weights):
    d = jnp.diff(response, axis=axis)
    s = jnp.sign(d) * jnp.broadcast_to(w, d.shape) * (g / d.size)
    before = [(0, 0)] * response.ndim
    after = [(0, 0)] * response.ndim
    before[axis] = (1, 0)
    after[axis] = (0, 1)
    grad = grad + jnp.pad(s, before) - jnp.pad(s, after)
  return grad, tuple(jnp.zeros_like(w) for w in weights)


_edge_aware_spatial.defvjp(_ea_fwd, _ea_bwd)


def soft_cluster_moments(response: jax.Array, coordinates: jax.Array):
  """Mass, centre and spatial variance of each cluster as a soft spatial density.

  With soft assignments q = softmax_c(S) `[P, C]`:
    m_c   = (1/P) sum_p q_pc                               (mass, sums to 1 over c)
    mu_c  = sum_p q_pc x_p / sum_p q_pc                    `[C, r]`
    var_c = sum_p q_pc |x_p - mu_c|^2 / sum_p q_pc         in [0, r] (x in [-1, 1]^r)
  Returns `(m [C], mu [C, r], var [C])`.
  """
  c = response.shape[-1]
  r = coordinates.shape[-1]
  q = jax.nn.softmax(response.reshape(-1, c), axis=-1)
  x = coordinates.reshape(-1, r)
  total = jnp.sum(q, axis=0)                                     # [C]
  safe = jnp.maximum(total, 1e-6)
  mu = (q.T @ x) / safe[:, None]                                 # [C, r]
  second = (q.T @ jnp.sum(jnp.square(x), axis=-1)) / safe        # [C]
  var = jnp.clip(second - jnp.sum(jnp.square(mu), axis=-1), 0.0, r)
  return total / q.shape[0], mu, var


def context_consistency_loss(response, image, coordinates):
  """Context-based consistency loss L_cc (paper Eq. 3-4), built on a proper density.

  Each cluster c is a spatial probability distribution q_c(p) = q_pc / sum_p q_pc with
  q = softmax_c(S); its spatial variance var_c (see `soft_cluster_moments`) measures how
  scattered it is. Every cluster counts alike:

      L_cc = (1 / (C r)) sum_c var_c      in [0, 1].

  Bounded and differentiable everywhere. The published code instead divides the raw BN
  output (signed, zero-mean) by its own near-zero sum, which is not a density.
  Weighting clusters by their mass instead (`context_consistency_mass_weighted`) does not
  measure compactness at all: by the law of total variance sum_c m_c var_c equals the
  image's total coordinate variance minus the spread of the cluster centres, so a
  compact centred blob scores the same as the same pixels scattered.

  Gradient (written out, recomputed from S in the backward pass): with M_c = sum_p q_pc,
  dL/dq_pc = (|x_p - mu_c|^2 - var_c) / (C r M_c) and, through the softmax,
  dL/dS_pc = q_pc (dL/dq_pc - sum_c' q_pc' dL/dq_pc') (the clip to [0, r] is inactive for
  any soft assignment and is not differentiated).
  """
  del image
  return _context_consistency(response, coordinates)


@jax.custom_vjp
def _context_consistency(response, coordinates):
  _, _, var = soft_cluster_moments(response, coordinates)
  return jnp.mean(var) / coordinates.shape[-1]


def _cc_fwd(response, coordinates):
  return _context_consistency(response, coordinates), (response, coordinates)


def _cc_bwd(residuals, g):
  response, coordinates = residuals
  c, r = response.shape[-1], coordinates.shape[-1]
  q = jax.nn.softmax(response, axis=-1)                          # [*spatial, C]
  spatial_axes = tuple(range(response.ndim - 1))
  # Sums over the pixels keep their axes ([1, .., 1, C]): explicit broadcasting.
  mass = jnp.maximum(jnp.sum(q, axis=spatial_axes, keepdims=True), 1e-6)       # [1.., C]
  mu = [jnp.sum(q * coordinates[..., a:a + 1], axis=spatial_axes, keepdims=True) / mass
        for a in range(r)]
  distance = sum(jnp.square(coordinates[..., a:a + 1] - mu[a]) for a in range(r))  # [*sp, C]
  var = jnp.sum(q * distance, axis=spatial_axes, keepdims=True) / mass         # [1.., C]
  d_q = (distance - var) / (c * r * mass)
  d_s = q * (d_q - jnp.sum(q * d_q, axis=-1, keepdims=True))
  return g * d_s, jnp.zeros_like(coordinates)


_context_consistency.defvjp(_cc_fwd, _cc_bwd)


def context_consistency_mass_weighted_loss(response, image, coordinates):
  """L_cc with clusters weighted by mass: sum_c m_c var_c / r in [0, 1] (for ablations)."""
  del image
  mass, _, var = soft_cluster_moments(response, coordinates)
  return jnp.sum(mass * var) / coordinates.shape[-1]


_LOSS_TERMS: Dict[str, LossTerm] = {
    "cross_entropy": cross_entropy_loss,
    "sparse_spatial": sparse_spatial_loss,
    "context_consistency": context_consistency_loss,
    "context_consistency_mass_weighted": context_consistency_mass_weighted_loss,
    "edge_aware_spatial": edge_aware_spatial_loss,
}
# The names of the terms called with a `LossContext` (`register_loss_term(needs_context=)`).
_CONTEXT_TERMS = set()
# A read-only view: `register_loss_term` is the way in.
LOSS_TERMS = types.MappingProxyType(_LOSS_TERMS)


def register_loss_term(name: str, fn: LossTerm, *, overwrite: bool = False,
                       needs_context: bool = False) -> LossTerm:
  """Makes `fn(response, image, coordinates) -> scalar` usable as `loss_weights` name `name`;
  with `needs_context`, `fn(response, image, coordinates, context: LossContext)`."""
  if name in LOSS_TERMS and not overwrite:
    raise ValueError(f"a loss term named {name!r} is already registered")
  if not callable(fn):
    raise TypeError(f"a loss term must be callable, got {type(fn).__name__}")
  _LOSS_TERMS[name] = fn
  if needs_context:
    _CONTEXT_TERMS.add(name)
  else:
    _CONTEXT_TERMS.discard(name)
  return fn


def needs_context(weights: Tuple[Tuple[str, float], ...]) -> bool:
  """Whether any term named in the `(name, weight)` pairs `weights` takes a `LossContext`."""
  return any(name in _CONTEXT_TERMS for name, _ in weights)


def loss_term(name: str) -> LossTerm:
  try:
    return LOSS_TERMS[name]
  except KeyError:
    raise ValueError(f"unknown loss term {name!r}; registered: {sorted(LOSS_TERMS)}") from None


def total_loss(response, image, coordinates, weights: Tuple[Tuple[str, float], ...],
               context: Optional[LossContext] = None
               ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """`(sum_n w_n L_n, {n: L_n})` over the `(name, weight)` pairs `weights`; a term that
  needs a `LossContext` gets `context` (a ValueError if it is None)."""
  terms = {}
  for name, _ in weights:
    if name in _CONTEXT_TERMS:
      if context is None:
        raise ValueError(f"loss term {name!r} needs a LossContext (the network and a key)")
      terms[name] = loss_term(name)(response, image, coordinates, context)
    else:
      terms[name] = loss_term(name)(response, image, coordinates)
  total = sum(w * terms[name] for name, w in weights)
  return total, terms


def coordinate_grid(spatial_shape: Tuple[int, ...], spacing=None) -> jax.Array:
  """Pixel coordinates `[*spatial, r]`.

  Without `spacing` every axis spans [-1, 1] (a non-square image is stretched). With
  `spacing` `[r]` (the physical size of a pixel or voxel along each axis, e.g. mm, in
  the order of `spatial_shape`) axes keep their physical proportions: axis a spans
  [-h_a, h_a] with h_a = e_a / max_b e_b, e_a = (n_a - 1) s_a its physical extent, so the
  longest physical extent spans [-1, 1]. `spacing` may be a traced array (one compiled
  program serves every spacing); an anisotropic volume is then not distorted.
  """
  rank = len(spatial_shape)
  axes = [jnp.linspace(-1.0, 1.0, n) if n > 1 else jnp.zeros((1,)) for n in spatial_shape]
  if spacing is not None:
    spacing = jnp.asarray(spacing, jnp.float32)
    if spacing.shape != (rank,):
      raise ValueError(f"spacing must have one entry per spatial axis ({rank}), "
                       f"got shape {spacing.shape}")
    extents = jnp.asarray([max(n - 1, 1) for n in spatial_shape], jnp.float32) * spacing
    half = extents / jnp.max(extents)
    axes = [axis * half[a] for a, axis in enumerate(axes)]
  grids = jnp.meshgrid(*axes, indexing="ij")
  return jnp.stack(grids, axis=-1).astype(jnp.float32)
