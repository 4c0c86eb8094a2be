"""The student's per-pixel losses, weighted by the teacher's confidence.

With logits z `[B, S, S]`, p = sigmoid(z), targets y in [0, 1] and weights w in [0, 1]
(`[B, S, S]`; w = |2 share - 1|, `confidence_weight`):

    L_ce   = sum_{b,i} w_bi (softplus(z_bi) - y_bi z_bi) / max(sum_{b,i} w_bi, 1e-6)
             (the binary cross-entropy -y log p - (1 - y) log(1 - p), from logits)
    L_dice = mean_b [ 1 - (2 sum_i w_bi p_bi y_bi + eps) / (sum_i w_bi (p_bi + y_bi) + eps) ]
             (soft Dice per image, eps = 1 pixel)
    L      = L_ce, L_dice or L_ce + L_dice  (`DistilConfig.loss`)
"""

from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp

DICE_EPS = 1.0


def confidence_weight(share: jax.Array) -> jax.Array:
  """w = |2 share - 1|: 1 where every teacher run (member, seed) agrees, 0 at a tie."""
  return jnp.abs(2.0 * share - 1.0)


def weighted_cross_entropy(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
  """L_ce (module docstring) over every pixel of the batch; a scalar."""
  per_pixel = jax.nn.softplus(logits) - target * logits
  return jnp.sum(weight * per_pixel) / jnp.maximum(jnp.sum(weight), 1e-6)


def weighted_soft_dice(logits: jax.Array, target: jax.Array, weight: jax.Array,
                       eps: float = DICE_EPS) -> jax.Array:
  """L_dice (module docstring): the soft Dice loss per image `[B, ...]`, averaged."""
  axes = tuple(range(1, logits.ndim))
  p = jax.nn.sigmoid(logits)
  overlap = jnp.sum(weight * p * target, axes)
  total = jnp.sum(weight * (p + target), axes)
  return jnp.mean(1.0 - (2.0 * overlap + eps) / (total + eps))


def distil_loss(logits: jax.Array, target: jax.Array, weight: jax.Array,
                loss: str) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """(L, L_ce, L_dice) with L the sum the config's `loss` names ("ce", "dice", "ce+dice");
  both terms are always returned for the record."""
  ce = weighted_cross_entropy(logits, target, weight)
  dice = weighted_soft_dice(logits, target, weight)
  total = {"ce": ce, "dice": dice, "ce+dice": ce + dice}[loss]
  return total, ce, dice
