"""The import graph of `sgscn_jax` has no cycle.

Every module of the package is parsed with `ast` (not imported), and every `import` and
`from ... import` of a `sgscn_jax` module is an edge, wherever it is written: at the top, inside
a function, under `if TYPE_CHECKING`. `from sgscn_jax.core import conv` is an edge to the module
`sgscn_jax.core.conv` when that is a module, else to the package `sgscn_jax.core` (a name its
`__init__` defines or re-exports). Importing `a.b.c` also runs the `__init__` of the packages
`a.b` and `a` that are not yet running, so it is an edge to each package above the target that
is not a package above (or the package of) the importer: `registry` importing
`sgscn_jax.baselines.host` would be an edge to `sgscn_jax.baselines`, whose `__init__` imports
every baseline. An explicit import from a package above the importer (`from sgscn_jax import
Config` in `sgscn_jax.running`) is an edge to it, as that package may not have finished
running. A package's own `__init__` re-exports are edges like any other import.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import sgscn_jax

PACKAGE = "sgscn_jax"


def package_modules() -> dict[str, Path]:
  """Every module of the package, `{dotted name: file}` (packages by their `__init__.py`)."""
  root = Path(sgscn_jax.__file__).parent
  modules = {PACKAGE: root / "__init__.py"}
  for info in pkgutil.walk_packages([str(root)], prefix=PACKAGE + "."):
    relative = Path(*info.name.split(".")[1:])
    modules[info.name] = (root / relative / "__init__.py" if info.ispkg
                          else (root / relative).with_suffix(".py"))
  return modules


def _ancestors(name: str) -> list[str]:
  """The packages above `name`, outermost first: `a.b.c` -> [`a`, `a.b`]."""
  parts = name.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
  """The package's modules that the module `name` (file `path`) imports, and the packages
  whose `__init__` such an import runs (see the module docstring)."""
  is_package = path.name == "__init__.py"
  own_package = name if is_package else name.rpartition(".")[0]
  targets: set[str] = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      targets.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = own_package.split(".")
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
      for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.add(submodule if submodule in modules else base)
  edges = set()
  running = set(_ancestors(name)) | {name}  # already running (or done) when `name` runs
  for target in targets:
    if target.split(".")[0] != PACKAGE:
      continue
    assert target in modules, f"{name} imports {target}, which is not a module of the package"
    edges.update(m for m in _ancestors(target) if m not in running)
    edges.add(target)
  edges.discard(name)
  return edges


def import_graph() -> dict[str, set[str]]:
  modules = package_modules()
  return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as a path `[a, b, ..., a]`, or None (depth-first search)."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  path: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_find_cycle_reports_the_path():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_imports_are_found_everywhere_and_resolved_to_modules(tmp_path):
  modules = {name: Path() for name in (
      PACKAGE, "sgscn_jax.core", "sgscn_jax.core.conv", "sgscn_jax.core.loop",
      "sgscn_jax.data", "sgscn_jax.data.resize", "sgscn_jax.running",
      "sgscn_jax.running.images", "sgscn_jax.running.results")}
  source = tmp_path / "images.py"
  source.write_text(
      "import numpy as np\n"
      "from sgscn_jax.core import conv\n"             # a module: the module
      "from sgscn_jax import Config\n"                # a name: the package
      "from . import results\n"                       # relative
      "def f():\n"
      "  from sgscn_jax.data import resize\n"         # inside a function
      "  import sgscn_jax.core.loop\n")
  edges = imported_modules("sgscn_jax.running.images", source, modules)
  # `sgscn_jax.core` and `sgscn_jax.data` are run by the imports below them; `sgscn_jax` and
  # `sgscn_jax.running` are already running when `sgscn_jax.running.images` is imported,
  # but the explicit `from sgscn_jax import Config` is an edge to the package
  assert edges == {"sgscn_jax.core", "sgscn_jax.core.conv", PACKAGE, "sgscn_jax.running.results",
                   "sgscn_jax.data", "sgscn_jax.data.resize", "sgscn_jax.core.loop"}


def test_the_package_graph_has_every_module_and_the_init_re_exports():
  graph = import_graph()
  assert {"sgscn_jax.core.network", "sgscn_jax.core.layers", "sgscn_jax.registry",
          "sgscn_jax.baselines.kmeans", "sgscn_jax.data.datasets"} <= set(graph)
  assert "sgscn_jax.registry" in graph[PACKAGE]  # the package's re-exports
  assert "sgscn_jax.core.conv" in graph["sgscn_jax.core.layers"]


def test_the_package_has_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)
