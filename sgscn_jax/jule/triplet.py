"""JULE's weighted triplet loss (Yang et al., CVPR 2016, eq. 10; `TripletEmbedding.lua` of
jwyang/JULE.torch), over every triplet of a batch.

For unit-length embeddings f_i `[B, E]` with cluster labels y_i and a validity mask v_i, the
triplets are T = {(i, j, k) : i < j, y_i = y_j, y_k != y_i, v_i v_j v_k}: an anchor, a
positive of its cluster and a negative of another. With squared distances d_ij = |f_i - f_j|^2,

    L = (1 / max(|T|, 1)) sum_{(i,j,k) in T} max(0, gamma d_ij - d_ik + m)

gamma (`gamma`, JULE's 1) weighs the positive pair, m (`margin`, JULE's 0.2) is the margin;
0 when T is empty. JULE draws 20 negatives at random per positive pair (`-num_nsampling`);
taking every negative of the batch is the expectation of that draw, needs no random numbers
inside the step and keeps the shapes fixed. Memory: one `[B, B, B]` float array (B = 128:
8 MB).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def squared_distances(f: jax.Array) -> jax.Array:
  """|f_i - f_j|^2 `[B, B]` from `f` `[B, E]`, clipped at 0."""
  sq = jnp.sum(jnp.square(f), -1)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (f @ f.T), 0.0)


def weighted_triplet_loss(f: jax.Array, labels: jax.Array, valid: jax.Array,
                          margin: float = 0.2, gamma: float = 1.0):
  """`(L, |T|)` of the module docstring: `f` `[B, E]`, `labels` `[B]` int, `valid` `[B]` bool.

  Returns the loss `[]` float32 and the number of triplets `[]` int32.
  """
  b = f.shape[0]
  d = squared_distances(f)
  same = labels[:, None] == labels[None, :]
  pair_valid = valid[:, None] & valid[None, :]
  upper = jnp.arange(b)[:, None] < jnp.arange(b)[None, :]
  positive = same & pair_valid & upper                        # (i, j)
  negative = (~same) & pair_valid                             # (i, k)
  mask = positive[:, :, None] & negative[:, None, :]          # (i, j, k)
  hinge = jnp.maximum(gamma * d[:, :, None] - d[:, None, :] + margin, 0.0)
  count = jnp.sum(mask)
  loss = jnp.sum(jnp.where(mask, hinge, 0.0)) / jnp.maximum(count, 1)
  return loss.astype(jnp.float32), count.astype(jnp.int32)
