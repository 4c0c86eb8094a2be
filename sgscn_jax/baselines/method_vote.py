"""A vote of methods: several registered methods segment one image, their objects are voted.

`--method vote:kmeans:5+otsu_blue+chan_vese` (experiments.segment; the registry's grammar,
`registry.parse_method`) or the same item in `--methods` (experiments.reproduce_tables) runs
each member, a registered method with its own config, on the image with its own key, and the
image runner (`running.images`, which asks `Method.kind == "vote"`) finds each
member's mask-free object with the run's `ObjectConfig` (the data set's object prior), as it
would for that method alone. The case's object is their per-pixel majority
(`evaluation.consensus.vote_objects`, the seed consensus's vote):

    share(p) = |{j : object_j(p)}| / M,    object(p) = share(p) > 1/2,

and where exactly half the members hold a pixel (an even M), the FIRST member's object
decides (the tie rule: name the member you trust most first). The label map the paper
protocols score is the 2-label map of the voted object (1 inside), so every protocol scores
the vote itself. The run folder keeps each member's label map
(`member_labels/<case>_<member slug>.png`, from which a resume with other object settings
votes again) and the share of members whose object holds each pixel
(`object_share/<case>.png`, 255 = all); each row records `object_agreement_mean`.

This module is the method half: `VoteConfig` (the members and their configs),
`VoteEntryPoints` (each member's `segment_batch` on the same images, member j with keys
`fold_in(key, j)`: for a case, `fold_in(case_key, j)`), the parsing of member lists and the
checks; the object half is the image runner's (`running.scoring.voted_object`, the member
files `running.case_files`). The vote is registered once by `sgscn_jax.builtin_methods` as
`vote`; a vote is of objects, so a run without the object step (`--noobjects`) is refused,
and so is a seed consensus of a vote. (`parse_members`, `vote_config` and `is_vote` are the
older parser, kept for `distil.teacher`; the grammar is `registry.parse_method`'s.)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import numpy as np

from sgscn_jax import registry
from sgscn_jax.errors import UserError

NAME = "vote"
PREFIX = NAME + ":"
MIN_MEMBERS = 2


class VoteError(UserError, ValueError):
  """A vote asked in a way that cannot run (unknown member, too few, no object step); one
  line for the user (a `ValueError` too, so callers that catch bad values catch it)."""


@dataclasses.dataclass(frozen=True)
class VoteConfig:
  """The members of a vote, in order (the first breaks ties).

  Attributes:
    members: `((method name, its config), ...)`: registered methods other than `vote`, each
      with its own frozen config (hashable, so the vote's config is too).
  """
  members: Tuple[Tuple[str, Any], ...] = ()

  @property
  def slugs(self) -> Tuple[str, ...]:
    """Each member's slug (`kmeans_k5`, `otsu_blue`): the run folders' names for the
    method alone, and the member's name in `member_labels/<case>_<slug>.png`."""
    return tuple(member_slug(name, config) for name, config in self.members)

  @property
  def slug(self) -> str:
    """The vote's folder name, `vote_kmeans_k5+otsu_blue+chan_vese`."""
    return NAME + "_" + "+".join(self.slugs)

  @property
  def title(self) -> str:
    """The table column, `vote (k-means k=5, Otsu (blue), Chan-Vese)`."""
    return f"{NAME} (" + ", ".join(member_title(n, c) for n, c in self.members) + ")"


def member_slug(name: str, config: Any) -> str:
  """`name_k<k>` for a method with a number of clusters (as `comparison.plan` names runs),
  else `name`."""
  return f"{name}_k{config.k}" if registry.get_method(name).takes_k else name


def member_title(name: str, config: Any) -> str:
  method = registry.get_method(name)
  return method.title + (f" k={config.k}" if method.takes_k else "")


def is_vote(spec: str) -> bool:
  """Whether a method spec (`--method`, an item of `--methods`) asks for a vote."""
  return spec.strip().startswith(PREFIX) or spec.strip() == NAME


def parse_members(text: str) -> Tuple[Tuple[str, Optional[int]], ...]:
  """`"vote:kmeans:5,otsu_blue,chan_vese"` (the `vote:` prefix optional; members separated
  by `,` or `+`) -> `(("kmeans", 5), ("otsu_blue", None), ("chan_vese", None))`.

  Raises:
    VoteError: fewer than `MIN_MEMBERS` members, an unknown or nested member, a `:k` for a
      method without clusters, a member asked twice.
  """
  text = text.strip()
  body = text[len(PREFIX):] if text.startswith(PREFIX) else "" if text == NAME else text
  items = [t.strip() for t in body.replace("+", ",").split(",") if t.strip()]
  usage = "e.g. vote:kmeans:5,otsu_blue,chan_vese"
  if len(items) < MIN_MEMBERS:
    raise VoteError(f"{text!r}: a vote needs at least {MIN_MEMBERS} member methods ({usage})")
  members = []
  for item in items:
    name, _, k = item.partition(":")
    if name == NAME:
      raise VoteError(f"{text!r}: a vote cannot be a member of a vote")
    if name not in registry.METHODS:
      choices = ", ".join(n for n in registry.method_names() if n != NAME)
      raise VoteError(f"{text!r}: unknown member {name!r}; members are any of {choices} "
                      f"({usage})")
    if k and not registry.get_method(name).takes_k:
      raise VoteError(f"{text!r}: member {name} takes no :k (its number of labels is not "
                      "fixed)")
    try:
      members.append((name, int(k) if k else None))
    except ValueError:
      raise VoteError(f"{text!r}: member {item!r}: :k must be an integer") from None
  return tuple(members)


def vote_config(members: Sequence[Tuple[str, Optional[int]]],
                configs: Mapping[str, Any]) -> VoteConfig:
  """The `VoteConfig` of parsed `members`, each with `configs[name]` (the run's config of that
  method: its default, its quick config, SGSCN's from the flags) and its `:k` where given."""
  built = []
  for name, k in members:
    config = configs[name]
    built.append((name, config if k is None else dataclasses.replace(config, k=k)))
  config = VoteConfig(tuple(built))
  if len(set(config.slugs)) != len(config.slugs):
    raise VoteError(f"a member is asked twice in the vote: {', '.join(config.slugs)}")
  return config


def check_config(config: Any) -> None:
  """Raises `VoteError` unless `config` is a `VoteConfig` of at least `MIN_MEMBERS` members."""
  if not isinstance(config, VoteConfig):
    raise TypeError(f"expected a VoteConfig, got {type(config).__name__}")
  if len(config.members) < MIN_MEMBERS:
    raise VoteError(f"a vote needs at least {MIN_MEMBERS} member methods, got "
                    f"{len(config.members)} (e.g. --method vote:kmeans:5,otsu_blue,chan_vese)")


def check_options(config: Any, *, objects: Any, seeds_per_image: int = 1) -> None:
  """Refuses a vote run that cannot vote: without the object step (`objects` None: the vote
  is of objects) or with a seed consensus (`seeds_per_image` > 1). Other configs pass."""
  if not isinstance(config, VoteConfig):
    return
  if objects is None:
    raise VoteError(f"{config.slug}: a vote of methods votes their objects; it needs the "
                    "object step (drop --noobjects)")
  if seeds_per_image != 1:
    raise VoteError(f"{config.slug}: a vote of methods takes no --seeds_per_image (each "
                    "member runs once, with its own key)")


class MethodVote(NamedTuple):
  """The members' results on a batch (or, indexed, on one image).

  `labels` and `n_labels` are the first member's (the tie-break member); the image runner
  replaces them by the 2-label map of the voted object once the members' objects are found.
  """
  labels: Any             # [B, *spatial] int32: the first member's label map
  n_labels: Any           # [B] int32: the first member's
  iterations: Any         # [B] int32: the members' iterations, summed
  finite: Any             # [B] bool: every member's result finite
  history: Any            # None: the members' histories differ in length
  members: Any            # [B, M, *spatial] int32: each member's label map
  member_n_labels: Any    # [B, M] int32
  member_iterations: Any  # [B, M] int32


def member_keys(keys, index: int):
  """Member `index`'s keys: `fold_in(key, index)` of each of `keys` `[B]` (typed or raw)."""
  return jax.vmap(lambda key: jax.random.fold_in(key, index))(keys)


class VoteEntryPoints:
  """`segment_one` / `segment_batch` of a vote: each member's own entry points (jitted, or
  host methods image by image) on the same images, with the member's keys and config."""

  def __init__(self, compiler_options: Optional[Mapping[str, Any]] = None):
    self.compiler_options = dict(compiler_options) if compiler_options else None

  def segment_batch(self, keys, images, config: VoteConfig, **kwargs) -> MethodVote:
    """Every member on `images` `[B, *spatial, C_in]`; member j's keys are `fold_in(keys,
    j)`. `kwargs` (batching, chunk_size, mesh) go to every member (host ones ignore them)."""
    check_config(config)
    results = []
    for j, (name, member_config) in enumerate(config.members):
      method = registry.get_method(name)
      entry = method.entry_points(self.compiler_options)
      results.append(jax.device_get(entry.segment_batch(member_keys(keys, j), images,
                                                        member_config, **kwargs)))
    labels = np.stack([np.asarray(r.labels, np.int32) for r in results], 1)
    n_labels = np.stack([np.asarray(r.n_labels, np.int32) for r in results], 1)
    iterations = np.stack([np.asarray(r.iterations, np.int32) for r in results], 1)
    finite = np.all(np.stack([np.asarray(r.finite, bool) for r in results], 1), 1)
    return MethodVote(labels[:, 0], n_labels[:, 0], iterations.sum(1).astype(np.int32),
                      finite, None, labels, n_labels, iterations)

  def segment_one(self, key, image, config: VoteConfig, **kwargs) -> MethodVote:
    """The vote's members on one image `[*spatial, C_in]` (a batch of one) with `key`."""
    batch = self.segment_batch(jax.numpy.stack([key]), np.asarray(image)[None], config,
                               **kwargs)
    return jax.tree.map(lambda a: a[0], batch)


def segment_image(key, image, config: VoteConfig) -> MethodVote:
  """The registry's `core`: `VoteEntryPoints().segment_one`."""
  return VoteEntryPoints().segment_one(key, image, config)


# registered by `sgscn_jax.builtin_methods`; a vote without members is refused when run.
METHOD = registry.Method(
    name=NAME, title="vote", core=segment_image, default_config=VoteConfig(),
    quick_config=VoteConfig(), make_entry_points=VoteEntryPoints, members_config=VoteConfig,
    description="a per-pixel majority of several methods' mask-free objects "
                "(vote:A,B,C; ties: the first member's object)")
