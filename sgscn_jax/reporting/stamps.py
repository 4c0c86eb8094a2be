"""Tables kept in the docs carry their provenance: each copied Markdown or CSV file starts
with the command and the commit that made it (`copy_stamped`, `stamp_line`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Mapping


STAMPED_SUFFIXES = (".md", ".csv")


def stamp_line(name: str, command: str, commit: str, newline: str = "\n") -> str:
  """The first line of a table file kept in the docs: `<!-- made by: <command> at commit
  <commit> -->` in Markdown, `# made by: ...` in a CSV."""
  text = f"made by: {command} at commit {commit}"
  if name.endswith(".md"):
    return f"<!-- {text} -->{newline}"
  if name.endswith(".csv"):
    return f"# {text}{newline}"
  raise ValueError(f"no stamp for {name!r}: only {', '.join(STAMPED_SUFFIXES)} files")


def source_commit() -> str:
  """`git rev-parse --short HEAD` of this checkout, `-dirty` appended when tracked files
  under sgscn_jax/ or experiments/ differ from it; "unknown" outside a git checkout."""
  root = Path(__file__).resolve().parents[2]
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                              "sgscn_jax", "experiments"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("-dirty" if changed else "")


def copy_stamped(written: Mapping[str, str], tables_dir: str, command: str,
                 commit: str) -> List[str]:
  """Copies the Markdown and CSV files of `written` (`{name: path}`, as
  `comparison.write_outputs` returns it) into `tables_dir`, each with `stamp_line` first (in
  the file's own line ending); figures and JSON are not copied. Returns the paths written."""
  out = Path(tables_dir)
  out.mkdir(parents=True, exist_ok=True)
  copied = []
  for name, path in sorted(written.items()):
    if not name.endswith(STAMPED_SUFFIXES):
      continue
    text = Path(path).read_bytes().decode("utf-8")
    newline = "\r\n" if text.split("\n", 1)[0].endswith("\r") else "\n"
    target = out / name
    target.write_bytes((stamp_line(name, command, commit, newline) + text).encode("utf-8"))
    copied.append(str(target))
  return copied
