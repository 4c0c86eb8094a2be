"""CUTS's two losses and the patch similarity that picks positives: pure functions.

All take ONE image's samples (vmap over images at the call site), float32 arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def nt_xent_loss(anchors: jax.Array, positives: jax.Array, temperature: float = 0.1) -> jax.Array:
  r"""NT-Xent (InfoNCE) over the S anchor/positive pairs of one image (CUTS's contrastive loss).

  With u_i = a_i / |a_i| and u_{S+i} = p_i / |p_i| (i < S), s_ij = u_i . u_j / tau, and
  pos(i) = i + S mod 2S, each of the 2S rows contrasts its positive with every other
  sample but itself and its positive (the negatives: the other anchors and the other
  anchors' positives):

  .. math::
    \ell_i = -\log \frac{e^{s_{i,pos(i)}}}{e^{s_{i,pos(i)}} + \sum_{j \ne i, pos(i)} e^{s_{ij}}},
    \qquad L_{con} = \frac{1}{2S} \sum_{i<2S} \ell_i .

  Args:
    anchors: `[S, L]` anchor embeddings.
    positives: `[S, L]` their positives' embeddings.
    temperature: tau > 0.

  Returns:
    `[]` the mean over the 2S rows (nats).
  """
  s = anchors.shape[0]
  u = jnp.concatenate([anchors, positives], 0)
  u = u / jnp.maximum(jnp.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
  sim = u @ u.T / temperature                                   # [2S, 2S]
  idx = jnp.arange(2 * s)
  pos = (idx + s) % (2 * s)
  positive = sim[idx, pos]
  others = jnp.where(idx[:, None] == idx[None, :], -jnp.inf, sim)   # drop self; keep pos
  return jnp.mean(jax.nn.logsumexp(others, axis=-1) - positive)


def patch_reconstruction_loss(real: jax.Array, reconstructed: jax.Array) -> jax.Array:
  r"""Mean squared error between the anchors' patches and their reconstructions.

  .. math:: L_{rec} = \frac{1}{S P^2 C} \sum \left(x - \hat{x}\right)^2

  Args:
    real, reconstructed: `[S, P, P, C]` in the encoder's input units.

  Returns:
    `[]` the mean over every element.
  """
  return jnp.mean(jnp.square(real - reconstructed))


def cuts_loss(contrastive: jax.Array, reconstruction: jax.Array, weight: float) -> jax.Array:
  r""":math:`L = \lambda L_{con} + (1 - \lambda) L_{rec}` (lambda = `weight`; CUTS: 0.001)."""
  return weight * contrastive + (1.0 - weight) * reconstruction


def patch_ssim(a: jax.Array, b: jax.Array) -> jax.Array:
  r"""SSIM of two patches `[..., P, P, C]` as ONE window (every pixel and channel):

  .. math::
    \mathrm{SSIM} = \frac{(2 \mu_a \mu_b + c_1)(2 \sigma_{ab} + c_2)}
                         {(\mu_a^2 + \mu_b^2 + c_1)(\sigma_a^2 + \sigma_b^2 + c_2)},

  c_1 = (0.01 D)^2, c_2 = (0.03 D)^2, D = max(a) - min(a) (1 where a is flat: CUTS's
  `range_aware_ssim`), sigma the population (co)variances. Returns `[...]`.
  """
  axes = (-3, -2, -1)
  d = jnp.max(a, axes) - jnp.min(a, axes)
  d = jnp.where(d > 0, d, 1.0)
  c1, c2 = (0.01 * d) ** 2, (0.03 * d) ** 2
  ma, mb = jnp.mean(a, axes), jnp.mean(b, axes)
  va = jnp.mean(jnp.square(a), axes) - ma ** 2
  vb = jnp.mean(jnp.square(b), axes) - mb ** 2
  cov = jnp.mean(a * b, axes) - ma * mb
  return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
