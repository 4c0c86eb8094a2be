"""A batch of independent images spread over the devices of one process.

Every image is its own optimisation, so a batch `[B, ...]` is cut along its leading axis
into `n = mesh.size` equal shards, one per device, and each device runs the ordinary batched
program (`lax.map` or `vmap` over its `B / n` images) on its shard alone:

    keys [B], images [B, *spatial, C_in]          NamedSharding(mesh, P("batch"))
      --shard_map(per-device batched function, in/out specs P("batch"))-->
    Segmentation with every leaf [B, ...]         sharded the same way

`shard_map` states the absence of communication in the program itself: the per-device
function sees only its own images, and XLA inserts no collective. The mesh is 1-D over
the process's own devices (`jax.local_devices()`), so under `jax.distributed` images never
cross processes either; which images a process gets is `sgscn_jax.running.distributed`'s business.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"

# (keys [b], images [b, *spatial, C_in], config) -> Segmentation with leading axis b.
Batched = Callable[[jax.Array, jax.Array, object], object]


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh with axis `"batch"` over `devices` (default: this process's local devices)."""
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("batch_mesh needs at least one device")
  return Mesh(np.array(devices), (BATCH_AXIS,))


def round_up_batch(batch_size: int, mesh: Mesh | None) -> int:
  """The smallest multiple of the mesh's device count that is >= `batch_size`."""
  n = 1 if mesh is None else mesh.size
  return -(-max(batch_size, 1) // n) * n


@functools.lru_cache(maxsize=None)
def _sharded(fn: Batched, mesh: Mesh):
  """`jit(shard_map(fn))` over `mesh`, built once per (function, mesh)."""
  spec = PartitionSpec(BATCH_AXIS)

  def run(keys, images, config):
    per_device = lambda k, x: fn(k, x, config)
    # check_vma=False: the per-device function is opaque code (loops, a nested jit) with no
    # collective at all, so there is nothing for the replication checker to verify.
    return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=spec,
                         check_vma=False)(keys, images)

  return jax.jit(run, static_argnums=2)


def segment_sharded(fn: Batched, keys: jax.Array, images, config, mesh: Mesh):
  """`fn(keys, images, config)` with the batch axis split over `mesh`'s devices.

  Args:
    fn: a batched function (`[b]` keys, `[b, *spatial, C_in]` images, static config);
      each device calls it on its own `b = B / n` images.
    keys: `[B]` typed PRNG keys.
    images: `[B, *spatial, C_in]` float32.
    config: static (hashable).
    mesh: a 1-D mesh with axis "batch" (`batch_mesh()`).

  Returns:
    `fn`'s pytree, every leaf `[B, ...]`, sharded over the mesh along the batch axis.

  Raises:
    ValueError: B is not a multiple of the device count, or the mesh has another axis.
  """
  if tuple(mesh.axis_names) != (BATCH_AXIS,):
    raise ValueError(f"expected a 1-D mesh with axis {BATCH_AXIS!r} (batch_mesh()), "
                     f"got axes {mesh.axis_names}")
  b, n = int(np.shape(images)[0]), mesh.size
  if b % n:
    raise ValueError(f"a batch of {b} images cannot be split evenly over {n} devices: use a "
                     f"batch size that is a multiple of {n} (e.g. {round_up_batch(b, mesh)}), "
                     "padding with copies whose results are discarded")
  placed = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
  keys, images = jax.device_put((keys, images), placed)
  return _sharded(fn, mesh)(keys, images, config)
