"""docs/ADDING_A_METHOD.md runs as written: its three recipes' code blocks are executed and
its commands are run (in a temporary folder, through the command line), so the page cannot
drift from the code.

A block ```python whose first line is `# NAME.py` is a file of the recipe (written to the
folder); a ```python block without one is code run in Python after those files; a ```console
block's `$ ` lines are commands. `pip install -e .` is run as `pip install --no-deps
--no-build-isolation --target SITE .` so that the test installs the user's package into a
folder of its own, not into the environment the suite runs in; the entry point it declares
is then found through that folder on `PYTHONPATH`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sgscn_jax import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "ADDING_A_METHOD.md"
REPO = DOC.parents[1]


def blocks(kind: str) -> list[str]:
  return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def files() -> dict[str, str]:
  """The page's files: `{name: code}` from the python blocks headed `# NAME.py`."""
  out = {}
  for code in blocks("python"):
    first = code.splitlines()[0]
    match = re.fullmatch(r"# ([\w/]+\.py)(:.*)?", first)
    if match and match.group(2) is None:
      out[match.group(1)] = code
  return out


def commands(after: str) -> list[str]:
  """The `$ ` lines of the console blocks between the text `after` and the next section."""
  text = DOC.read_text()
  text = text[text.index(after):]
  text = text[:text.find("\n## ", 1)] if "\n## " in text[1:] else text
  lines = []
  for block in re.findall(r"```console\n(.*?)```", text, re.S):
    lines += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
  return lines


def run(command: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
  words = shlex.split(command)
  if words[0] == "python":
    words[0] = sys.executable
  proc = subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, **(env or {})))
  assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
  return proc


def finished(folder: Path) -> list[dict]:
  rows = [json.loads(p.read_text()) for p in sorted((folder / "cases").glob("*.json"))]
  assert rows and all(r["n_labels"] >= 1 for r in rows)
  return rows


@pytest.fixture
def recipe_folder(tmp_path):
  for name, code in files().items():
    if "/" not in name:
      (tmp_path / name).write_text(code)
  return tmp_path


def test_the_page_has_three_recipes_with_their_files():
  assert set(files()) == {"my_methods.py", "my_fitted.py"}
  assert any(c.startswith("# sgscn_jax/baselines/position_kmeans.py") for c in blocks("python"))
  assert len(commands("## Recipe 1")) >= 4 and len(commands("## Recipe 3")) == 1


def test_recipe_1_in_python(recipe_folder, monkeypatch):
  monkeypatch.syspath_prepend(str(recipe_folder))
  python = [c for c in blocks("python") if not c.startswith("# ")]
  try:
    import my_methods  # noqa: F401 - registers position_kmeans
    exec(compile(python[0], str(DOC), "exec"), {})  # noqa: S102 - the page's own code
  finally:
    registry.unregister_method("position_kmeans")
    sys.modules.pop("my_methods", None)


def test_recipe_1_through_the_command_line(recipe_folder):
  own = [c for c in commands("## Recipe 1") if "--methods_module" in c]
  assert len(own) == 2
  for command in own:
    run(command, recipe_folder)
  rows = finished(recipe_folder / "runs" / "mine")
  assert {r["method"] for r in rows} == {"position_kmeans"}
  saved = json.loads((recipe_folder / "runs" / "mine" / "run.json").read_text())
  assert "position_weight" in json.dumps(saved) and "0.2" in json.dumps(saved)
  vote = finished(recipe_folder / "runs" / "mine_vote")
  assert {r["method"] for r in vote} == {"vote_position_kmeans_k3+otsu"}


def test_recipe_1_installed_through_its_entry_point(recipe_folder):
  toml = blocks("toml")[0]
  (recipe_folder / "pyproject.toml").write_text(toml)
  site = recipe_folder / "site"
  installed = [c for c in commands("**Installed as a package**")][:2]
  assert installed[0] == "pip install -e ."
  run(f"{sys.executable} -m pip install -q --no-deps --no-build-isolation --target {site} .",
      recipe_folder)
  (recipe_folder / "my_methods.py").unlink()   # only the installed copy is left
  run(installed[1], recipe_folder / "site", env={"PYTHONPATH": str(site)})
  assert {r["method"] for r in finished(site / "runs" / "mine_installed")} == {
      "position_kmeans"}


def test_recipe_2_registers_like_a_builtin():
  code = files()["my_methods.py"]
  head = code[:code.index("register_method(Method(")]
  shipped = next(c for c in blocks("python") if c.startswith(
      "# sgscn_jax/baselines/position_kmeans.py"))
  module = types.ModuleType("sgscn_jax.baselines.position_kmeans")
  sys.modules[module.__name__] = module   # dataclasses look their module up
  try:
    exec(compile(head + shipped, str(DOC), "exec"), module.__dict__)  # noqa: S102
    registry.register_method(module.METHOD, entry=module.ENTRY)   # as BUILTIN's loop does
    spec = registry.parse_method("vote:position_kmeans:4+otsu_blue")
    assert spec.slug == "vote_position_kmeans_k4+otsu_blue"
    assert registry.get_method("position_kmeans").entry_points() is module.ENTRY
  finally:
    registry.unregister_method("position_kmeans")
    sys.modules.pop(module.__name__, None)


def test_recipe_3_fits_through_the_command_line_and_resumes(recipe_folder):
  command, = commands("## Recipe 3")
  run(command, recipe_folder)
  out = recipe_folder / "runs" / "fitted"
  rows = finished(out)
  assert len(rows) == 3 and {r["method"] for r in rows} == {"dark_colour"}
  state = json.loads((out / "fitted" / "dark_colour_state.json").read_text())
  assert state["config"]["margin"] == 0.3 and len(state["images"]) == 3
  again = run(command, recipe_folder)   # a resume: the fitted state is reused, nothing refitted
  assert "fitting" not in again.stderr
