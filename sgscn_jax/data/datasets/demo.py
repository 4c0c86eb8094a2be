"""The embedded default data set: synthetic lesion-like images the project generates.

No file is read: a case's `image_path` is a `synthetic:` address that `load_case`
turns back into the image with `sgscn_jax.data.synthetic.lesion_image((seed, i), shape)`,
so every machine sees the same pixels and the same ground truth.
"""

from __future__ import annotations

from sgscn_jax.data import synthetic
from sgscn_jax.data.datasets import Case, Record

# The mask-free object step's prior for this data set (`evaluation.objects.ObjectConfig`
# fields; a property of the data set, never of a case): synthetic lesions are darker than
# their skin.
OBJECT_PRIOR = {"profile": "lesion", "polarity": "dark"}

SCHEME = "synthetic:"


def list_cases(data_dir=None, n: int = 4, shape: tuple[int, int] = (128, 128),
               seed: int = 0, hairs: int = 0) -> list[Case]:
  """`n` demo cases `synth<seed>_<i>` of `shape`; `data_dir` is ignored."""
  del data_dir
  if n < 1:
    raise ValueError(f"the demo needs at least one case, got n={n}")
  h, w = (int(s) for s in shape)
  return [Case(f"synth{seed}_{i:03d}", f"{SCHEME}{seed}:{i}:{h}x{w}", None,
               {"seed": seed, "index": i, "shape": (h, w), "hairs": hairs})
          for i in range(n)]


def load_case(case: Case) -> Record:
  """Generates the case's image `[H, W, 3]` and its ground-truth mask `[H, W]`."""
  extra = case.extra
  image, mask = synthetic.lesion_image((extra["seed"], extra["index"]), tuple(extra["shape"]),
                                       hairs=extra.get("hairs", 0))
  return Record(case.case_id, image, mask,
                dict(extra, normalisation={"rule": "synthetic, already in [0, 1]"}))
