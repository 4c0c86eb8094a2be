"""The method grammar: how every command line, table and teacher names a method.

    NAME                      a registered method, default settings      sgscn, otsu_blue
    NAME:K                    its number of clusters (config field k)    kmeans:5
    NAME:FIELD=VALUE[,...]    any fields of its config, typed as they    iic:k=4,steps=100
    NAME:K,FIELD=VALUE[,...]  both                                      kmeans:5,iterations=50
    vote:A+B+C                a vote of the members' objects            vote:sgscn+kmeans:5

`parse_method` reads one spec, `parse_methods` a comma-separated list (a comma followed by
`FIELD=` continues the spec before it); both check every name, field and value, so a bad
spec fails before any work with one `MethodSpecError` line naming the accepted forms.
docs/USAGE.md, "Naming a method".
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from sgscn_jax.registry.methods import (Method, MethodSpecError, find_method, get_method,
                                        method_names)

GRAMMAR = ("NAME, NAME:K, NAME:FIELD=VALUE[,FIELD=VALUE...], NAME:K,FIELD=VALUE or "
           "vote:A+B+C (members in any of these forms); e.g. kmeans:5, "
           "iic:k=4,steps=100, vote:sgscn+kmeans:5+otsu_blue")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """A registered method with the config fields a user set, parsed from its text.

  `kmeans:5` is `MethodSpec("kmeans", (("k", "5"),))`; `vote:sgscn+kmeans:5` is
  `MethodSpec("vote", members=(MethodSpec("sgscn"), MethodSpec("kmeans", (("k", "5"),))))`.
  Option values stay text until `config()` reads each as the type of its field, so a
  spec is known to be valid (`parse_method` checks it) before any base config is chosen.

  Attributes:
    name: a registered method's name.
    options: `((field, value text), ...)` in the order given (`:K` is `("k", K)`).
    members: a vote's member specs, in order (the first breaks ties); () otherwise.
  """
  name: str
  options: Tuple[Tuple[str, str], ...] = ()
  members: Tuple["MethodSpec", ...] = ()

  @property
  def method(self) -> Method:
    return get_method(self.name)

  def config(self, base: Optional[Mapping[str, Any]] = None, *, quick: bool = False) -> Any:
    """The method's config: `base[name]` where given (a run's config of that method, e.g.
    SGSCN's from its flags), else its quick or default config, with `options` applied; a
    vote's is built from its members' configs (`Method.members_config`)."""
    method = self.method
    if self.members:
      return method.members_config(tuple((m.name, m.config(base, quick=quick))
                                         for m in self.members))
    config = (base or {}).get(self.name)
    if config is None:
      config = method.quick_config if quick else method.default_config
    return _apply_options(config, self.options, str(self))

  @property
  def slug(self) -> str:
    """Its run folders' name: `kmeans_k5` (a method with clusters always shows its k, the
    default's too), `otsu_blue`, `iic_k4_steps-100`, `vote_sgscn+kmeans_k5`."""
    if self.members:
      return self.name + "_" + "+".join(m.slug for m in self.members)
    method = self.method
    parts = [self.name]
    given = dict(self.options)
    if method.takes_k:
      parts.append(f"k{given.get('k', method.default_config.k)}")
    parts += [f"{f}-{v}" for f, v in self.options if f != "k"]
    return "_".join(parts)

  @property
  def title(self) -> str:
    """Its table column: the method's title with the fields the spec sets, `k-means k=5`,
    `IIC k=4 steps=100`, `DeepCluster` (a default k is not shown), `vote (SGSCN, k-means
    k=5)`."""
    if self.members:
      return f"{self.name} (" + ", ".join(m.title for m in self.members) + ")"
    return " ".join([self.method.title] + [f"{f}={v}" for f, v in self.options])

  def __str__(self) -> str:
    """The canonical text, which `parse_method` reads back to an equal spec."""
    if self.members:
      return self.name + ":" + "+".join(str(m) for m in self.members)
    if not self.options:
      return self.name
    if len(self.options) == 1 and self.options[0][0] == "k":
      return f"{self.name}:{self.options[0][1]}"
    return self.name + ":" + ",".join(f"{f}={v}" for f, v in self.options)


def _fail(text: str, problem: str) -> MethodSpecError:
  return MethodSpecError(f"method {text!r}: {problem}; accepted forms: {GRAMMAR}")


def _field_value(config: Any, field: str, text: str, spec: str) -> Any:
  """`text` read as the type of `config.field` (a bool from 1/true/yes/0/false/no; `none`
  for a field whose value may be None)."""
  current = getattr(config, field)
  lowered = text.strip().lower()
  if lowered == "none" and current is None:
    return None
  try:
    if isinstance(current, bool):
      if lowered not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(text)
      return lowered in ("1", "true", "yes")
    if isinstance(current, (int, float, str)):
      return type(current)(text)
    if current is None:   # an optional number: an int where it reads as one, else a float
      return int(text) if text.strip().lstrip("-").isdigit() else float(text)
  except ValueError:
    raise _fail(spec, f"{field}={text!r} is not a {type(current).__name__}") from None
  raise _fail(spec, f"field {field!r} ({type(current).__name__}) cannot be set from text")


def _apply_options(config: Any, options: Sequence[Tuple[str, str]], spec: str) -> Any:
  if not options:
    return config
  fields = {f.name for f in dataclasses.fields(config)}
  changes = {}
  for field, text in options:
    if field not in fields:
      raise _fail(spec, f"unknown field {field!r} (fields: {', '.join(sorted(fields))})")
    changes[field] = _field_value(config, field, text, spec)
  return dataclasses.replace(config, **changes)


def _parse_single(text: str, whole: str) -> MethodSpec:
  """`NAME`, `NAME:K`, `NAME:F=V[,F=V]`, `NAME:K:F=V[,F=V]` (no vote)."""
  name, _, rest = text.strip().partition(":")
  name = name.strip()
  if not name:
    raise _fail(whole, "no method name")
  method = find_method(name)
  if method is None:
    raise _fail(whole, f"unknown method {name!r} (methods: {', '.join(method_names())})")
  if method.members_config is not None:
    raise _fail(whole, f"{name} takes member methods, e.g. {name}:sgscn+kmeans:5")
  options: List[Tuple[str, str]] = []
  head = re.match(r"\s*(-?\d+)\s*(?:[:,;]|$)", rest)
  if head:   # NAME:K, NAME:K:FIELD=VALUE or NAME:K,FIELD=VALUE
    options.append(("k", str(int(head.group(1)))))
    rest = rest[head.end():]
  elif rest.strip() and "=" not in rest:
    raise _fail(whole, f"{rest!r} after {name}: is neither a number of clusters nor "
                       "FIELD=VALUE")
  for item in _split_options(rest):
    field, sep, value = item.partition("=")
    if not sep or not field.strip():
      raise _fail(whole, f"{item!r} is not FIELD=VALUE")
    options.append((field.strip(), value.strip()))
  if any(f == "k" for f, _ in options) and not method.takes_k:
    raise _fail(whole, f"{name} takes no number of clusters (its number of labels is not "
                       "fixed)")
  fields = [f for f, _ in options]
  if len(set(fields)) != len(fields):
    raise _fail(whole, "a field is set twice")
  _apply_options(method.default_config, options, whole)   # every field and value, now
  return MethodSpec(name, tuple(options))


def _split_options(rest: str) -> List[str]:
  """`a=1,b=vote:x+y;c=2` -> `["a=1", "b=vote:x+y", "c=2"]`: items start at a `,` or `;`
  followed by `FIELD=`, so a value may hold `:`, `+` and other commas."""
  items: List[str] = []
  for piece in re.split(r"[;,]", rest):
    if not piece.strip():
      continue
    if items and not _OPTION_START.match(piece):
      items[-1] += "," + piece
    else:
      items.append(piece)
  return items


_OPTION_START = re.compile(r"\s*[A-Za-z_]\w*\s*=")


def parse_method(text: str) -> MethodSpec:
  """One method spec (`--method`, a teacher): see `GRAMMAR`.

  A vote's members are separated by `+` (`vote:sgscn+kmeans:5+otsu_blue`); the older
  `vote:kmeans:5,otsu_blue` (members after commas) is read the same way here, where one
  method is named. Every name, field and value is checked here, so a bad spec fails before
  any work.

  Raises:
    MethodSpecError: one line naming the problem and the accepted forms.
  """
  text = str(text).strip()
  name, sep, body = text.partition(":")
  method = find_method(name.strip())
  if method is not None and method.members_config is not None:
    if "+" not in body and "," in body and "=" not in body:
      body = body.replace(",", "+")   # the older comma form of a vote
    members = [m for m in body.split("+") if m.strip()]
    if len(members) < 2:
      raise _fail(text, f"a {name} needs at least 2 member methods")
    parsed = tuple(_parse_single(m, text) for m in members)
    if len({m.slug for m in parsed}) != len(parsed):
      raise _fail(text, "a member is named twice")
    spec = MethodSpec(name.strip(), members=parsed)
    spec.config()
    return spec
  return _parse_single(text, text)


def split_specs(text: str | Sequence[str]) -> List[str]:
  """The texts of the specs in a list (`parse_methods`'s splitting, nothing parsed): a comma
  followed by `FIELD=` continues the spec before it; an older-form vote (`vote:A,B`, no `+`)
  takes every item after it."""
  pieces = [t.strip() for t in (text.split(",") if isinstance(text, str) else list(text))
            if t.strip()]
  items: List[str] = []
  for index, piece in enumerate(pieces):
    if items and _OPTION_START.match(piece):
      items[-1] += "," + piece
      continue
    method = find_method(piece.partition(":")[0])
    if method is not None and method.members_config is not None and "+" not in piece:
      items.append(",".join([piece] + pieces[index + 1:]))   # the older vote form
      break
    items.append(piece)
  return items


def parse_methods(text: str | Sequence[str]) -> List[MethodSpec]:
  """Several method specs (`--methods`): specs separated by commas, where a comma followed by
  `FIELD=` continues the spec before it (`iic:k=4,steps=100,sgscn` is two specs) and a
  vote's members are joined by `+`. The older form of a vote in a list, `vote:A,B,C` (no
  `+`), takes every item after it as a member, so it comes last.

  Raises:
    MethodSpecError: a bad spec, or one named twice.
  """
  specs = [parse_method(item) for item in split_specs(text)]
  slugs = [s.slug for s in specs]
  if len(set(slugs)) != len(slugs):
    raise MethodSpecError(f"a method is named twice in {text!r}")
  return specs
