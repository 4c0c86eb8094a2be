"""The README's facts: its size, the two set-up commands, commands that parse with the flags
that exist, links to pages that exist, a results table whose every figure is in the page its
column cites, and a Python example that runs."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP_COMMANDS = (
    "pip install -q -r requirements.txt -e . && python -m experiments.segment",
    "pip install -q -r requirements.txt -e . && pip install -q --no-deps -r requirements-ants.txt"
    " && python -m pytest -q",
)


def _commands(text):
  """`(script, flags)` of every `python -m experiments.X ...` in the text (code spans and
  blocks; a command may continue on the next line inside a code span)."""
  text = text.replace("\n", " ")
  found = []
  for match in re.finditer(r"python -m (experiments\.\w+)([^`]*)", text):
    words = shlex.split(match.group(2).split("&&")[0])
    found.append((match.group(1), words))
  return found


def test_readme_commands_parse_with_existing_flags():
  commands = _commands(README)
  assert ("experiments.segment", []) in commands and len(commands) >= 2
  for script, flags in commands:
    check = (f"import {script}; from absl import flags; flags.FLAGS(['prog'] + {flags!r}); "
             "print('parsed')")
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "parsed" in proc.stdout, (script, flags, proc.stderr[-1500:])


def test_readme_python_example_runs():
  code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
  from sgscn_jax import Config
  from sgscn_jax.data import synthetic
  image = synthetic.lesion_image(0, (24, 32))[0]
  small = Config(n_channels=8, iterations=2)
  namespace = {"image": image, "images": np.stack([image] * 2)}
  # the example's settings and batch, at test size
  code = code.replace("Config()", "SMALL").replace("image_keys(0, 8)", "image_keys(0, 2)")
  exec(compile(code, "README.md", "exec"), dict(namespace, SMALL=small))  # noqa: S102


def test_readme_is_a_front_page():
  """At most about 6 KB (STYLE.md point 10), with the two set-up commands exactly as
  `.ci/run` and the tests that install from a fresh clone expect them."""
  assert len(README.encode("utf-8")) <= 6.5 * 1024
  blocks = re.findall(r"```\n(.*?)\n```", README, re.S)
  for command in SETUP_COMMANDS:
    assert command in blocks, command


def _cited_paths(text):
  """Backticked repository paths in the text (`docs/X.md`, `docs/tables/ph2/`, `records/...`)."""
  return re.findall(r"`((?:docs|records)/[^`\s]*)`", text)


def test_readme_links_exist():
  paths = _cited_paths(README) + re.findall(r"\]\((docs/[^)]+)\)", README)
  assert any(p.startswith("docs/") for p in paths)
  for path in paths:
    assert (ROOT / path).exists(), path


def test_readme_maps_every_docs_page():
  mapped = set(_cited_paths(README[README.index("## Documentation"):]))
  for page in sorted((ROOT / "docs").glob("*.md")):
    assert f"docs/{page.name}" in mapped, page.name


def _results_table():
  """(headers, rows) of the README's results table: the one whose first header is `method`."""
  lines = README.split("\n")
  start = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
  headers = [c.strip() for c in lines[start].strip("|").split("|")]
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    rows.append([c.strip() for c in line.strip("|").split("|")])
  return headers, rows


def _text_of(path):
  target = ROOT / path
  if target.is_dir():
    return "\n".join(p.read_text() for p in sorted(target.rglob("*.md")))
  return target.read_text()


def _sources(line):
  """The pages a column's line cites, per row: `[(names, paths)]`, one entry per `;`-separated
  part; a part that starts with its paths (names empty) covers every row no other part names,
  a part like "S3-Net `docs/S3NET.md`" or "CUTS, the vote `docs/CUTS.md`" the rows so named."""
  parts = []
  for part in line.split(":", 1)[1].split(";"):
    head = re.sub(r"\([^)]*\)", "", part.split("`", 1)[0])
    names = [n.strip().removeprefix("the ").lower() for n in head.split(",") if n.strip()]
    parts.append((names, _cited_paths(part)))
  return parts


def _pages_for(method, parts):
  method = method.lower()
  named = [paths for names, paths in parts if any(method.startswith(n) for n in names)]
  return named[0] if named else [p for names, paths in parts if not names for p in paths]


def test_readme_results_figures_are_in_the_pages_they_cite():
  """Every figure of the results table appears in a page (or stamped table folder) that the
  column's line under the table cites for that row: the README quotes, it does not compute."""
  headers, rows = _results_table()
  assert len(rows) >= 10 and all(len(row) == len(headers) for row in rows)
  for column, header in enumerate(headers[1:], start=1):
    line = next(line for line in README.split("\n") if line.startswith(f"- {header} "))
    parts = _sources(line)
    for row in rows:
      figures = re.findall(r"\d+\.\d", row[column])
      if not figures:
        assert row[column] == "–" or "not measured yet" in line, (header, row)
        continue
      pages = _pages_for(row[0], parts)
      assert pages, (header, row[0], line)
      text = "\n".join(_text_of(path) for path in pages)
      missing = [f for f in figures if not re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", text)]
      assert not missing, (header, row[0], missing, pages)
