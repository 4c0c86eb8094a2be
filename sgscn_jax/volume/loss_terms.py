"""Two loss terms for SGSCN on volumes, registered in `core.losses` (`register_loss_term`)
when this module is imported (`volume.segment` imports it), named in `Config.loss_weights`:

    Config().with_weights(intensity_variance=1.0, potts=1.0)

`intensity_variance` keeps the cue that separates tissues in MRI, the voxel's own value, in
the clustering. With p_pc = softmax(S_p / T)_c (T = `TEMPERATURE` = 0.1: SGSCN's labels are the
argmax of S, and at T = 1 the softmax of a BN-normalised response over many channels is so
flat that the term hardly sees the labels: on MNI152 at 4 mm it stayed at 0.4-0.8 while the
argmax merged grey and white matter) and the input's values I_p `[P, C_in]`, the soft
within-cluster variance of the input (a soft k-means objective on intensity):

    m_c = sum_p p_pc I_p / sum_p p_pc,
    L_iv = (1 / (P C_in)) sum_p sum_c p_pc |I_p - m_c|^2,

in units of the input's variance (the volume is standardised: at most about 1). Its
gradient moves each voxel's assignment towards the cluster whose mean value is nearest.

`potts` is the Potts prior of Atropos' MRF as a loss (`volume.mrf.potts_loss`): the expected
share of disagreeing face-neighbour pairs, sum over axes of mean (1 - p_i . p_{i+e_a}),
each axis weighted 1 (the term gets no spacing; `coordinates` are not needed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgscn_jax.core import losses
from sgscn_jax.volume import mrf

TEMPERATURE = 0.1


def intensity_variance_loss(response, image, coordinates):
  """L_iv of the module docstring: `response` `[*S, K]`, `image` `[*S, C_in]`; a scalar."""
  del coordinates
  p = jax.nn.softmax(response.astype(jnp.float32) / TEMPERATURE, -1)
  p = p.reshape(-1, response.shape[-1])
  x = image.astype(jnp.float32).reshape(-1, image.shape[-1])
  mass = jnp.sum(p, 0)                                            # [K]
  mean = (p.T @ x) / jnp.maximum(mass, 1e-6)[:, None]             # [K, C_in]
  sq = jnp.sum(x * x, -1)[:, None] - 2 * x @ mean.T + jnp.sum(mean * mean, -1)[None, :]
  return jnp.sum(p * jnp.maximum(sq, 0.0)) / (x.shape[0] * x.shape[1])


def potts_loss(response, image, coordinates):
  """L_potts of `volume.mrf.potts_loss` (isotropic neighbour weights); a scalar."""
  del image, coordinates
  return mrf.potts_loss(response)


for _name, _fn in (("intensity_variance", intensity_variance_loss), ("potts", potts_loss)):
  if _name not in losses.LOSS_TERMS:
    losses.register_loss_term(_name, _fn)
