"""`--methods_module`: the flag every command shares for methods from outside the project.

    python -m experiments.segment --methods_module my_methods --method position_kmeans:4

imports `my_methods` (a module on the Python path; the current folder is on it) before the
method is named, so the methods its import registers reach the command. Installed packages
need no flag: their entry points (group `sgscn_jax.methods`) are loaded by the registry on
the first lookup (`registry.load_entry_points`). docs/ADDING_A_METHOD.md.
"""

from __future__ import annotations

from absl import flags

from sgscn_jax import registry

FLAGS = flags.FLAGS
flags.DEFINE_list("methods_module", [], "Modules to import before the method is named, whose "
                  "import registers methods (e.g. my_methods for ./my_methods.py).")


def load() -> None:
  """Imports the modules of --methods_module (one line and exit 2 if one cannot be)."""
  registry.import_methods_modules(FLAGS.methods_module)
