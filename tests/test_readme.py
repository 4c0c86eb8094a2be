"""The README's commands parse with the flags that exist, and its Python example runs."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


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
