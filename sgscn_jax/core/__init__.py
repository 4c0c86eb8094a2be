"""The engine: configuration, the networks and their shared layers (`layers`), loss terms,
the per-image loop, batching (`host` for methods run on the host), sharding.

Imports point one way: nothing here imports another subpackage of `sgscn_jax`.
"""
