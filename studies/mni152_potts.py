"""Atropos' model without a network, as JULE's final labelling does it (docs/VOLUMES.md):
k-means (k = 3) on each voxel's value standardised inside nilearn's brain mask, then the
Potts ICM of `jule.labelling.cluster_voxels` (beta 0, 0.3, 1; 5 sweeps; neighbours weighted
by the template's spacing), scored as `experiments.mni152` scores (GM and WM maps at 0.5,
the cluster of largest overlap). What JULE's defaults (intensity_weight 4, mrf 1) reduce to
when the learnt embedding is dropped:

  python -m studies.mni152_potts [--resolutions 2,1] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse

import jax

from sgscn_jax.data import foreground
from sgscn_jax.evaluation import metrics, selection
from sgscn_jax.jule import labelling
from sgscn_jax.jule.method import JuleConfig


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolutions", default="2,1")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--betas", default="0,0.3,1")
  args = parser.parse_args()
  from experiments import mni152   # the template, its crop and its brain mask
  jule = JuleConfig(k=3)           # its final labelling's constants, the embedding left out
  for res in (int(r) for r in args.resolutions.split(",")):
    image, gm, wm, crop, full = mni152.load_template(res, 2)
    mask = mni152.load_mask("brain", res, crop, full)
    z = jule.intensity_weight * foreground.masked_standardise(image, mask)  # w z, no f
    for beta in (float(b) for b in args.betas.split(",")):
      for seed in (int(s) for s in args.seeds.split(",")):
        labels = labelling.cluster_voxels(jax.random.key(seed), z, jule.k,
                                          jule.kmeans_restarts, jule.kmeans_iterations, mask,
                                          beta, jule.mrf_iterations, full.spacing)
        gm_d, wm_d = (100 * metrics.dice(labels == selection.largest_overlap_cluster(labels, t), t)
                      for t in (gm, wm))
        print(f"{res} mm, beta {beta:g}, seed {seed}: GM {gm_d:.1f} WM {wm_d:.1f}", flush=True)


if __name__ == "__main__":
  main()
