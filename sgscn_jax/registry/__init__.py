"""The one registry of segmentation methods, and the grammar that names them.

`methods`: the `Method` record, `register_method` / `get_method` / `method_names`, the
entry-point group `sgscn_jax.methods` through which installed packages add methods, and a
data-set method's `FitContext`. `grammar`: `MethodSpec`, `parse_method` and `parse_methods`,
the one way every command line, table and teacher names a method (`kmeans:5`,
`iic:k=4,steps=100`, `vote:sgscn+kmeans:5+otsu_blue`; docs/USAGE.md).

The registry imports no method: the built-ins are registered by `sgscn_jax.builtin_methods`,
which the package's `__init__` imports. docs/ADDING_A_METHOD.md.
"""

from sgscn_jax.registry.grammar import (GRAMMAR, MethodSpec, parse_method, parse_methods,
                                        split_specs)
from sgscn_jax.registry.methods import (ENTRY_POINT_GROUP, METHODS, FitContext, Method,
                                        MethodSpecError, config_with_options, find_method,
                                        fit_method, get_method, import_methods_modules,
                                        load_entry_points, method_names, register_method,
                                        unregister_method)

__all__ = [
    "ENTRY_POINT_GROUP", "GRAMMAR", "METHODS", "FitContext", "Method", "MethodSpec",
    "MethodSpecError", "config_with_options", "find_method", "fit_method", "get_method",
    "import_methods_modules", "load_entry_points", "method_names", "parse_method",
    "parse_methods", "register_method", "split_specs", "unregister_method",
]
