r"""Which context-based consistency loss L_cc helps SGSCN on PH2? A screening study.

Every candidate L_cc is a bounded, differentiable loss term registered with
`sgscn_jax.register_loss_term` and added to the published objective
`1 * L_ce + 5 * L_ss` with its own weight. Each variant is run on the same PH2 cases
with the same network initialisations, and the script prints a Markdown table of the
largest-overlap DSC, the labels left and the iterations run.

Notation (see `sgscn_jax.core.losses.soft_cluster_moments`): over P pixels and C channels,
q = softmax_c(S / T) the soft assignment (T = 1 unless said), m_c = (1/P) sum_p q_pc the
cluster's mass (sums to 1), mu_c its centre, var_c = sum_p q_pc |x_p - mu_c|^2 / sum_p q_pc
its spatial variance in [0, 2] (coordinates x in [-1, 1]^2). A disc of mass m (area 4 m in
[-1, 1]^2) has variance v0 * m with v0 = 2 / pi ~ 0.64, the least of any soft density of
that mass, so rho_c = var_c / (v0 m_c) >= 1 measures how non-compact cluster c is.

Protocol (fixed): image / 255, resized to `--size` squared (PIL bilinear, which
antialiases when shrinking); the labels are brought back to the mask's resolution by
nearest neighbour; the predicted cluster is the label with the largest overlap with the
ground-truth foreground (ties: the lowest label id); DSC = 2|A n B| / (|A| + |B|) at mask
resolution; mean and median over the images, in %. The network of case i (its index among
the sorted cases of `--data_dir`) is initialised from `image_keys(seed, n_all)[i]`, so a
case gets the same initialisation in every subset and in every variant.

Variants are given as `NAME[:WEIGHT][@ITERATIONS][f]`, e.g. `none`, `mass:1`,
`compact:5@100`, `mass:1@100f` (a trailing `f` runs every image the full ITERATIONS,
i.e. no early stop at `min_labels`). `NAME` is `none` (no L_cc) or a key of `VARIANTS`.

Examples (from the repository root):
  python -m studies.lcc_study --cases=every_third --variants=none,mass:1,mass:5
  python -m studies.lcc_study --cases=all --variants=none,compact:1 --cache=/tmp/lcc.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sgscn_jax import Config, image_keys, register_loss_term, segment_batch
from sgscn_jax.core import losses

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir",
                    os.path.normpath(os.path.join(_REPO, "..", "shared", "data", "PH2")),
                    "PH2 root: holds 'PH2 Dataset images/IMDxxx/...'.")
flags.DEFINE_enum("cases", "every_third", ["every_third", "all"],
                  "every_third: cases 0, 3, ..., 33 of the sorted cases (12 of PH2's 40); "
                  "all: every case.")
flags.DEFINE_integer("size", 256, "Images are resized to size x size before segmentation.")
flags.DEFINE_integer("iterations", 50, "Default maximum iterations (a variant's @N overrides).")
flags.DEFINE_integer("min_labels", 3, "Early stop at this many labels (published: 3).")
flags.DEFINE_integer("batch", 4, "Images per segment_batch call (the last batch is padded). "
                     "On a 2-core CPU (jaxlib 0.10.2) batch 1 was measured ~1.7x faster per "
                     "image than batch 2 or 4 (0.9 vs 1.5-1.6 s per 256x256 iteration).")
flags.DEFINE_integer("seed", 0, "Seed of image_keys.")
flags.DEFINE_list("variants", ["none", "mass:1", "mass:5"],
                  "Comma list of NAME[:WEIGHT][@ITERATIONS][f] (see the module docstring).")
flags.DEFINE_string("cache", "", "Optional JSON-lines file of per-case results; cases already "
                    "in it (same variant, size, seed, min_labels) are not run again.")
flags.DEFINE_integer("limit", 0, "If > 0, only the first `limit` selected cases (smoke tests).")

V0 = 2.0 / math.pi  # variance of a uniform disc of mass m in [-1, 1]^2 is V0 * m


# ----------------------------------------------------------------------------------------
# Candidate context-consistency losses. Each is (response [H,W,C], image, coords) -> scalar.
# ----------------------------------------------------------------------------------------

def _moments(response, coordinates, temperature: float = 1.0):
  """(m [C], mu [C, r], var [C]) of q = softmax(S / temperature); see the module docstring."""
  return losses.soft_cluster_moments(response / temperature, coordinates)


def lcc_mass(response, image, coordinates):
  """Mass-weighted variance (the library default): L = sum_c m_c var_c / r, in [0, 1].

  Equals the soft within-cluster spatial variance, i.e. total variance minus the
  between-cluster variance sum_c m_c |mu_c|^2: it rewards clusters with distinct centres
  (a k-means in coordinate space) and is blind to concentric clusters (lesion in its ring).
  """
  del image
  m, _, var = _moments(response, coordinates)
  return jnp.sum(m * var) / coordinates.shape[-1]


def _make_mass_power(alpha: float):
  def lcc_mass_power(response, image, coordinates):
    del image
    m, _, var = _moments(response, coordinates)
    w = jnp.power(jnp.maximum(m, 1e-12), alpha)
    return jnp.sum(w * var) / (jnp.sum(w) * coordinates.shape[-1])
  lcc_mass_power.__doc__ = (
      f"Power-of-mass weighting, alpha = {alpha}: L = sum_c w_c var_c / r with "
      f"w_c = m_c^alpha / sum_k m_k^alpha; a weighted mean of var_c / r, in [0, 1]. "
      f"alpha < 1 gives small clusters more say than the mass weighting.")
  return lcc_mass_power


def _make_sharp(temperature: float):
  def lcc_sharp(response, image, coordinates):
    del image
    m, _, var = _moments(response, coordinates, temperature)
    return jnp.sum(m * var) / coordinates.shape[-1]
  lcc_sharp.__doc__ = (
      f"Mass-weighted variance of sharpened assignments, T = {temperature}: "
      f"q = softmax(S / T), L = sum_c m_c var_c / r, in [0, 1]. A T < 1 brings the soft "
      f"clusters closer to the argmax labels that are actually segmented.")
  return lcc_sharp


def _compactness(response, coordinates, temperature: float = 1.0):
  """(m [C], rho [C]) with rho_c = var_c / (V0 m_c) clipped to >= 1 (1 = a disc)."""
  m, _, var = _moments(response, coordinates, temperature)
  rho = var / (V0 * jnp.maximum(m, 1e-6))
  return m, jnp.maximum(rho, 1.0)


def _make_compact(temperature: float):
  def lcc_compact(response, image, coordinates):
    del image
    m, rho = _compactness(response, coordinates, temperature)
    return jnp.sum(m * (1.0 - 1.0 / rho))
  lcc_compact.__doc__ = (
      f"Mass-weighted area-normalised non-compactness, T = {temperature}: with "
      f"rho_c = max(1, var_c / (V0 m_c)), L = sum_c m_c (1 - 1 / rho_c), in [0, 1). "
      f"0 iff every cluster is a disc; a scattered or ring-shaped cluster costs up to "
      f"its mass.")
  return lcc_compact


def _make_compact_log(temperature: float):
  def lcc_compact_log(response, image, coordinates):
    del image
    m, rho = _compactness(response, coordinates, temperature)
    return jnp.sum(m * jnp.log(rho))
  lcc_compact_log.__doc__ = (
      f"Mass-weighted log non-compactness, T = {temperature}: "
      f"L = sum_c m_c log max(1, var_c / (V0 m_c)), in [0, log(pi C)] (since var_c <= 2 "
      f"and sum_c m_c log(1 / m_c) <= log C).")
  return lcc_compact_log


def lcc_present(response, image, coordinates):
  """Mean variance over the occupied clusters: L = (1/K) sum_{c: n_c > 0} var_c / r, in [0, 1].

  n_c = number of pixels whose argmax is c, K = number of such clusters; the indicator and
  1/K are held constant (stop_gradient). Like the plain sum over the 100 channels but
  blind to the empty channels, whose soft mass is spread over the whole image.
  """
  del image
  c = response.shape[-1]
  _, _, var = _moments(response, coordinates)
  labels = losses.cluster_labels(response)
  present = jnp.zeros((c,), jnp.float32).at[labels.ravel()].set(1.0)
  present = jax.lax.stop_gradient(present)
  return jnp.sum(present * var) / (jnp.sum(present) * coordinates.shape[-1])


VARIANTS: Dict[str, Callable] = {
    "mass": lcc_mass,
    "mass_pow05": _make_mass_power(0.5),
    "sharp05": _make_sharp(0.5),
    "sharp025": _make_sharp(0.25),
    "compact": _make_compact(1.0),
    "compact_log": _make_compact_log(1.0),
    "compact_sharp05": _make_compact(0.5),
    "present": lcc_present,
}


def register_variants() -> None:
  """Registers every `VARIANTS` entry as loss term `lcc_<name>` (idempotent)."""
  for name, fn in VARIANTS.items():
    register_loss_term(f"lcc_{name}", fn, overwrite=True)


@dataclasses.dataclass(frozen=True)
class Variant:
  """One row of the study: an L_cc term (or none), its weight and the loop settings."""
  name: str
  weight: float
  iterations: int
  early_stop: bool

  @classmethod
  def parse(cls, spec: str, default_iterations: int) -> "Variant":
    """Parses NAME[:WEIGHT][@ITERATIONS][f]."""
    text = spec.strip()
    early_stop = True
    iterations = default_iterations
    if "@" in text:
      text, iters = text.split("@", 1)
      if iters.endswith("f"):
        early_stop, iters = False, iters[:-1]
      iterations = int(iters)
    name, _, weight = text.partition(":")
    weight = weight or "1"
    if name != "none" and name not in VARIANTS:
      raise ValueError(f"unknown variant {name!r}; known: none, {', '.join(VARIANTS)}")
    return cls(name, 0.0 if name == "none" else float(weight), iterations, early_stop)

  @property
  def key(self) -> str:
    return (f"{self.name}:{self.weight:g}@{self.iterations}"
            + ("" if self.early_stop else "f"))

  def config(self, min_labels: int) -> Config:
    weights = [("cross_entropy", 1.0), ("sparse_spatial", 5.0)]
    if self.name != "none":
      weights.append((f"lcc_{self.name}", self.weight))
    return Config(iterations=self.iterations, min_labels=min_labels,
                  early_stop=self.early_stop, loss_weights=tuple(weights))


# ----------------------------------------------------------------------------------------
# PH2 reading and evaluation (self-contained, numpy + PIL).
# ----------------------------------------------------------------------------------------

def list_cases(data_dir: str) -> List[str]:
  """Sorted case ids (IMDxxx) that have both a dermoscopic image and a lesion mask."""
  root = os.path.join(data_dir, "PH2 Dataset images")
  if not os.path.isdir(root):
    raise FileNotFoundError(f"no 'PH2 Dataset images' folder under {data_dir!r}")
  cases = []
  for case in sorted(os.listdir(root)):
    image, mask = case_paths(data_dir, case)
    if os.path.isfile(image) and os.path.isfile(mask):
      cases.append(case)
  return cases


def case_paths(data_dir: str, case: str) -> Tuple[str, str]:
  base = os.path.join(data_dir, "PH2 Dataset images", case)
  return (os.path.join(base, f"{case}_Dermoscopic_Image", f"{case}.bmp"),
          os.path.join(base, f"{case}_lesion", f"{case}_lesion.bmp"))


def load_case(data_dir: str, case: str, size: int) -> Tuple[np.ndarray, np.ndarray]:
  """(image float32 [size, size, 3] in [0, 1], mask bool [H, W] at its own resolution)."""
  image_path, mask_path = case_paths(data_dir, case)
  with Image.open(image_path) as im:
    im = im.convert("RGB").resize((size, size), Image.BILINEAR)
    image = np.asarray(im, np.float32) / 255.0
  with Image.open(mask_path) as mk:
    mask = np.asarray(mk)
  if mask.ndim == 3:
    mask = mask[..., 0]
  return image, mask > 0


def resize_nearest(labels: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour resize of an int label map to `shape` (pixel-centre sampling)."""
  h, w = labels.shape
  rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
  cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
  return labels[rows[:, None], cols[None, :]]


def largest_overlap_dsc(labels: np.ndarray, mask: np.ndarray) -> float:
  """DSC (in [0, 1]) of the label with the largest overlap with `mask` (ties: lowest id)."""
  labels = resize_nearest(labels, mask.shape)
  overlap = np.bincount(labels[mask].ravel(), minlength=int(labels.max()) + 1)
  chosen = int(np.argmax(overlap))  # argmax returns the first (lowest) maximum
  pred = labels == chosen
  denom = pred.sum() + mask.sum()
  return float(2.0 * np.logical_and(pred, mask).sum() / denom) if denom else 1.0


# ----------------------------------------------------------------------------------------
# Running.
# ----------------------------------------------------------------------------------------

def _load_cache(path: str) -> Dict[Tuple[str, str], dict]:
  out = {}
  if path and os.path.isfile(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          rec = json.loads(line)
          out[(rec["context"], rec["case"])] = rec
  return out


def run_variant(variant: Variant, cases: Sequence[str], all_cases: Sequence[str],
                data: Dict[str, Tuple[np.ndarray, np.ndarray]], cache: Dict, context: str,
                batch: int, seed: int, min_labels: int,
                cache_path: str = "") -> Tuple[List[dict], List[dict]]:
  """Segments `cases` with `variant` in batches of `batch`.

  Returns `(records of all cases, records newly computed)`, one dict per case; new records
  are appended to `cache_path` (JSON lines) if given.
  """
  config = variant.config(min_labels)
  keys_all = image_keys(seed, len(all_cases))
  todo = [c for c in cases if (context, c) not in cache]
  records = {c: cache[(context, c)] for c in cases if (context, c) in cache}
  if len(todo) < len(cases):
    print(f"  {len(cases) - len(todo)} cases from the cache", flush=True)
  new = []
  for start in range(0, len(todo), batch):
    chunk = todo[start:start + batch]
    padded = chunk + [chunk[-1]] * (batch - len(chunk))  # one compiled shape per config
    index = np.array([all_cases.index(c) for c in padded])
    images = np.stack([data[c][0] for c in padded])
    t0 = time.time()
    result = segment_batch(keys_all[index], images, config)
    labels = np.asarray(result.labels)
    seconds = time.time() - t0
    for j, case in enumerate(chunk):
      rec = dict(context=context, case=case,
                 dsc=largest_overlap_dsc(labels[j], data[case][1]),
                 n_labels=int(result.n_labels[j]), iterations=int(result.iterations[j]),
                 finite=bool(result.finite[j]), seconds=seconds / len(chunk))
      records[case] = rec
      new.append(rec)
      if cache_path:  # written per batch, so an interrupted study resumes where it was
        with open(cache_path, "a") as f:
          f.write(json.dumps(rec) + "\n")
    done = min(start + batch, len(todo))
    print(f"  [{variant.key}] {done}/{len(todo)} in {seconds:.1f}s: "
          + ", ".join(f"{r['case']} dsc {100 * r['dsc']:.1f} K {r['n_labels']} "
                      f"it {r['iterations']}" for r in new[-len(chunk):]), flush=True)
  return [records[c] for c in cases], new


def summarise(variant: Variant, records: Sequence[dict], seconds: float,
              reference: Optional[np.ndarray]) -> str:
  """One Markdown row; `reference` is the first variant's per-case DSC (%) for the paired delta."""
  dsc = np.array([r["dsc"] for r in records]) * 100
  k = np.array([r["n_labels"] for r in records])
  it = np.array([r["iterations"] for r in records])
  stops = int(np.sum(k <= FLAGS.min_labels))
  weight = "-" if variant.name == "none" else f"{variant.weight:g}"
  iters = f"{variant.iterations}" + ("" if variant.early_stop else " (no stop)")
  if reference is None or len(dsc) < 2:
    delta = "-"
  else:
    d = dsc - reference
    delta = (f"{d.mean():+.1f} +- {d.std(ddof=1) / np.sqrt(len(d)):.1f} "
             f"({int(np.sum(d > 0.05))}/{int(np.sum(d < -0.05))})")
  return (f"| {variant.name} | {weight} | {iters} | {dsc.mean():.1f} | {np.median(dsc):.1f} | "
          f"{delta} | {k.mean():.1f} ({k.min()}-{k.max()}) | {it.mean():.1f} | {stops} | "
          f"{seconds:.0f} |")


def main(argv):
  del argv
  register_variants()
  variants = [Variant.parse(v, FLAGS.iterations) for v in FLAGS.variants if v.strip()]
  all_cases = list_cases(FLAGS.data_dir)
  # every_third: sorted indices 0, 3, ..., 33, i.e. 12 of the 40 PH2 cases in data/.
  cases = all_cases if FLAGS.cases == "all" else all_cases[::3][:12]
  if FLAGS.limit > 0:
    cases = cases[:FLAGS.limit]
  print(f"{len(cases)} of {len(all_cases)} cases ({FLAGS.cases}): {' '.join(cases)}", flush=True)
  print(f"jax {jax.__version__} on {jax.devices()}; size {FLAGS.size}, batch {FLAGS.batch}, "
        f"seed {FLAGS.seed}, min_labels {FLAGS.min_labels}", flush=True)
  data = {c: load_case(FLAGS.data_dir, c, FLAGS.size) for c in cases}

  cache = _load_cache(FLAGS.cache)
  rows, per_case, reference = [], {}, None
  for variant in variants:
    context = f"{variant.key}|size{FLAGS.size}|seed{FLAGS.seed}|min{FLAGS.min_labels}"
    print(f"variant {variant.key}: loss_weights {variant.config(FLAGS.min_labels).loss_weights}",
          flush=True)
    t0 = time.time()
    records, new = run_variant(variant, cases, all_cases, data, cache, context, FLAGS.batch,
                               FLAGS.seed, FLAGS.min_labels, FLAGS.cache)
    wall = time.time() - t0
    seconds = sum(r["seconds"] for r in records)
    if any(not r["finite"] for r in records):
      print(f"  WARNING: non-finite loss in {[r['case'] for r in records if not r['finite']]}")
    dsc = np.array([r["dsc"] for r in records]) * 100
    rows.append(summarise(variant, records, seconds, reference))
    per_case[variant.key] = records
    if reference is None:
      reference = dsc
    print(f"  done in {wall:.0f}s wall; " + rows[-1], flush=True)

  print()
  print(f"PH2, {len(cases)} cases ({FLAGS.cases}), {FLAGS.size}x{FLAGS.size}, seed {FLAGS.seed}, "
        f"L_ce + 5 L_ss + w L_cc, early stop at {FLAGS.min_labels} labels unless 'no stop'")
  print()
  print("| L_cc variant | weight | iterations | mean DSC | median DSC | paired delta vs row 1 "
        "(better/worse) | labels left mean (min-max) | mean iterations run "
        "| stopped at min_labels | seconds |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for row in rows:
    print(row)
  print()
  print("DSC in %. paired delta: mean +- standard error over the cases of (DSC - DSC of the first "
        "row), and the number of cases better/worse. seconds: segmentation time summed over the "
        "cases (incl. compilation; cached cases count their original time).")
  print()
  print("Per-case DSC (%) / labels left:")
  print()
  print("| case | " + " | ".join(per_case) + " |")
  print("|---|" + "---|" * len(per_case))
  for i, case in enumerate(cases):
    print(f"| {case} | " + " | ".join(
        f"{100 * recs[i]['dsc']:.1f} / {recs[i]['n_labels']}" for recs in per_case.values()) + " |")


if __name__ == "__main__":
  app.run(main)
