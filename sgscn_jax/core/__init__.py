"""The engine: configuration, network, loss terms, the per-image loop, batching, sharding.

Imports point one way: nothing here imports another subpackage of `sgscn_jax`.
"""
