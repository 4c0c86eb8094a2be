"""Scores (`metrics`), cluster selection rules (`selection`) and the mask-free object step
(`objects`): host-side NumPy, never inside a jitted program."""
