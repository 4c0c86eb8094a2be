"""S3-Net's affine transformation-consistency loss L_AT, done right (2D only).

Each iteration draws one random affine map A (`warp.random_affine`, from the context's key
`fold_in(loss key, step)`), runs the network's consistency head on the warped image A(I)
and asks it to match the same warp applied to the response on the original image:

    P   = softmax_c(S)                      S = F(I), the main response `[H, W, C]`
    P_A = A(P)                              bilinear warp of the probabilities (each pixel
                                            a convex combination: still a distribution)
    Q   = F_aux(A(I))                       logits of the consistency head on the warped image
    m   = valid_mask(A)                     pixels not brought in from outside the image

    kl: L_AT = sum_p m_p KL_sym(P_A[p] || softmax(Q[p])) / max(sum_p m_p, 1),
        KL_sym(p || q) = sum_c (p_c - q_c)(log p_c - log q_c)   (gradient into both sides)
    ce: L_AT = -sum_p m_p log softmax(Q[p])[argmax_c P_A[p]] / max(sum_p m_p, 1)
        (the warped pseudo-labels as constant targets, as L_ce)

L_AT is zero when the response commutes with the warp (F(A(I)) = A(F(I)) on the valid
pixels) and positive otherwise. The published S3-Net code instead rotates the outputs of
its two heads by the same 90 degrees and compares them, which asks nothing to be invariant.

Both variants are registered loss terms (`transform_consistency_kl`,
`transform_consistency_ce`) that need a `losses.LossContext`; they work with the SGSCN
network too (its consistency head is the response map itself).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgscn_jax.core import losses, warp

VARIANTS = ("kl", "ce")
# log of a probability is taken of max(p, TINY) (a warped distribution may hold exact zeros)
TINY = 1e-12


def transform_consistency(response: jax.Array, transformed: jax.Array, affine: warp.Affine,
                          variant: str = "kl") -> jax.Array:
  """L_AT for given `response` S `[H, W, C]` on I, consistency-head logits `transformed`
  Q `[H, W, C]` on A(I) and the map `affine` A (see the module docstring): a scalar."""
  if variant not in VARIANTS:
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
  if response.ndim != 3:
    raise ValueError("the transformation consistency L_AT is 2D only: expected S [H, W, C], "
                     f"got shape {response.shape}")
  p_warped = warp.warp(jax.nn.softmax(response, axis=-1), affine)
  mask = warp.valid_mask(affine, response.shape[:2]).astype(response.dtype)
  log_q = jax.nn.log_softmax(transformed, axis=-1)
  if variant == "kl":
    log_p = jnp.log(jnp.maximum(p_warped, TINY))
    per_pixel = jnp.sum((p_warped - jnp.exp(log_q)) * (log_p - log_q), axis=-1)
  else:
    targets = jax.lax.stop_gradient(jnp.argmax(p_warped, axis=-1))
    per_pixel = -jnp.take_along_axis(log_q, targets[..., None], axis=-1)[..., 0]
  return jnp.sum(mask * per_pixel) / jnp.maximum(jnp.sum(mask), 1.0)


def transform_consistency_term(variant: str, spec: warp.AffineRange = warp.AffineRange()):
  """The registered form `fn(S, image, coordinates, context)` of `transform_consistency`."""

  def term(response, image, coordinates, context: losses.LossContext):
    del coordinates
    affine = warp.random_affine(context.key, image.shape[:-1], spec)
    transformed = context.apply(warp.warp(image, affine))
    return transform_consistency(response, transformed, affine, variant)

  term.__doc__ = (f"L_AT, variant {variant!r} (see `consistency.transform_consistency`), on "
                  "a random affine warp drawn from the context's key.")
  return term


transform_consistency_kl_loss = transform_consistency_term("kl")
transform_consistency_ce_loss = transform_consistency_term("ce")

losses.register_loss_term("transform_consistency_kl", transform_consistency_kl_loss,
                          needs_context=True)
losses.register_loss_term("transform_consistency_ce", transform_consistency_ce_loss,
                          needs_context=True)
