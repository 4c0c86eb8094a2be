"""One data set, many processes: JAX's distributed runtime, a share each, one merge.

Every case is its own optimisation, so processes never exchange images or arrays; they
only agree on who does what and on when everything is done. Both go through the
key-value store and the liveness barrier of `jax.distributed`'s coordination service
(hosted by process 0), and every output goes to the shared `out_dir`:

    process 0 (the leader)                        process p > 0
    lists the cases without cases/<id>.json
    deals them (`deal`), publishes the deal  -->  reads the deal
    segments its share                            segments its share
    publishes its failures                        publishes its failures
    waits at the barrier  <------------------->   waits at the barrier
    waits until the others have disconnected      disconnects, exits
    merges: failures.csv, results.csv, summary, montage
      or, if a process died, names the cases nobody finished (`IncompleteRun`)

* Only the leader's view of the finished cases counts, so the processes agree on the
  deal even when a shared file system shows them different directory listings, and a
  rerun spreads only the missing cases over all processes.
* The barrier is the runtime's `get_live_nodes`: it returns once every live process has
  called it, dropping a process whose heartbeats stopped for `heartbeat_timeout_seconds`.
  A failure list published before the barrier proves that the process finished its share.
  The leader outlives the others' disconnection: the coordination service lives in process
  0, and a process whose disconnection finds it gone is aborted by the runtime.
* A process that dies loses at most the batch it was on: each case's files are written
  atomically, `cases/<id>.json` last. The leader then stops with the list of unfinished
  cases, and rerunning the same command(s) completes exactly those.
* A table of several runs (`experiments.reproduce_tables` with a team) is a sequence of
  rounds, one per run folder, in the same order on every process: each round is the deal,
  the shares and the barrier above, keyed by its number; only after the last round do the
  others disconnect.
* Recoverability (`jax_enable_recoverability`) is switched on: without it the runtime
  terminates every process as soon as one dies (measured on jax 0.10.2). If the leader
  itself dies the coordination service goes with it and the runtime stops the others;
  their finished cases are kept all the same.
"""

from __future__ import annotations

import heapq
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax

from sgscn_jax.data import resize
from sgscn_jax.data.datasets import Case

_DEAL_TIMEOUT_MS = 3600 * 1000  # the leader lists and sizes every case first


class IncompleteRun(RuntimeError):
  """Some cases were neither finished nor recorded as failed (a process died)."""

  def __init__(self, missing: Sequence[str], silent: Sequence[int]):
    self.missing, self.silent = list(missing), list(silent)
    shown = ", ".join(self.missing[:10]) + (", ..." if len(self.missing) > 10 else "")
    who = (f"process(es) {', '.join(map(str, self.silent))} stopped before finishing "
           "their share" if self.silent else "case files did not appear in the shared folder")
    super().__init__(
        f"{len(self.missing)} case(s) missing: {shown}; {who}. Nothing finished is lost: "
        "rerun the same command(s) to segment only the missing cases and write the summary.")


def deal(costs: Sequence[float], n: int) -> List[int]:
  """The owner (0..n-1) of each item: largest cost first, each to the least-loaded owner.

  Items are taken by decreasing cost, ties in their given order (the cases' id order);
  each goes to the owner with the smallest total so far, ties to the lowest index (the
  greedy "longest processing time first" rule: no owner ends more than one item's cost
  above the mean). Equal costs are dealt round-robin.
  """
  if n < 1:
    raise ValueError(f"need at least one owner, got {n}")
  owners = [0] * len(costs)
  heap = [(0.0, q) for q in range(n)]  # (load, owner): the least-loaded, lowest index first
  for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
    load, p = heapq.heappop(heap)
    owners[i] = p
    heapq.heappush(heap, (load + costs[i], p))
  return owners


def native_shape(case: Case) -> Optional[tuple]:
  """`(H, W)` of a case's image from its header (no pixel decoded), or None."""
  if "shape" in case.extra:  # generated cases (demo) carry their shape
    return tuple(case.extra["shape"])[:2]
  path = case.image_path
  try:
    if path.lower().endswith((".tif", ".tiff")):
      import tifffile
      with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.shape[series.axes.index("Y")], series.shape[series.axes.index("X")]
    from PIL import Image
    with Image.open(path) as image:
      return image.size[1], image.size[0]
  except Exception:  # noqa: BLE001 - an unreadable file fails later, in its owner's run
    return None


def case_cost(case: Case, size: Any = None, bucket_multiple: int = 16) -> int:
  """Pixels a case is segmented at (its bucket shape, `sgscn_jax.data.resize`); 1 if unknown.

  The optimisation's time is proportional to these pixels (every iteration is a few
  convolutions over the whole image), so balancing them balances the processes.
  """
  shape = native_shape(case)
  if shape is None:
    return 1
  h, w = resize.bucket_shape(resize.working_shape(shape, size), bucket_multiple)
  return int(h) * int(w)


class Team:
  """This process's place in a `jax.distributed` run: its index, the count, the store.

  A run is one or more rounds, each one data set (or one run folder of a table): `share`,
  then `gather`. Every process goes through the same rounds in the same order; the
  round's number keys its deal and its failures in the store. `gather(..., leave=True)`
  ends the last round: the other processes then leave the run.
  """

  def __init__(self, index: int, count: int, client: Any):
    self.index, self.count, self.client = index, count, client
    self._owner: Optional[Dict[str, int]] = None
    self._round = 0
    self._left = False

  @property
  def leader(self) -> bool:
    return self.index == 0

  def _key(self, *parts) -> str:
    return "/".join(["sgscn", f"round{self._round}", *map(str, parts)])

  def share(self, cases: Sequence[Case], pending: Sequence[Case],
            cost: Callable[[Case], float]) -> List[Case]:
    """This process's cases of this round. The leader deals its `pending` by `cost` and
    publishes the deal; the others take it (their own `pending` is ignored)."""
    if self._left:
      raise RuntimeError("this Team's run has ended (gather with leave=True); start a new "
                         "jax.distributed run for another")
    if self._owner is not None:
      raise RuntimeError("share called twice in one round: gather first")
    if self.leader:
      ids = [c.case_id for c in pending]
      payload = json.dumps({"ids": ids, "owners": deal([cost(c) for c in pending], self.count)})
      self.client.key_value_set_bytes(self._key("deal"), zlib.compress(payload.encode()))
    else:
      payload = zlib.decompress(
          self.client.blocking_key_value_get_bytes(self._key("deal"), _DEAL_TIMEOUT_MS))
    dealt = json.loads(payload)
    self._owner = dict(zip(dealt["ids"], dealt["owners"]))
    return [c for c in cases if self._owner.get(c.case_id) == self.index]

  def gather(self, failures: List[Dict[str, str]], cases: Sequence[Case],
             case_file: Callable[[Case], Path], *, leave: bool = True,
             visible_timeout: float = 120.0) -> Optional[List[Dict[str, str]]]:
    """Publishes this share's failures and waits for every live process (the round's
    end). With `leave` (the last round) the others then disconnect from the run, and the
    leader waits until they have; without it every process goes on to the next round.

    Returns:
      On the leader, the failures of all processes (in process order); None elsewhere.

    Raises:
      IncompleteRun (leader only): a dealt case has neither a case file nor a failure,
        because its process died, or because its file is still not visible after
        `visible_timeout` seconds (a shared file system showing new files late).
    """
    if self._owner is None:
      raise RuntimeError("gather before share")
    owner, prefix = self._owner, self._key("failures")
    self.client.key_value_set(f"{prefix}/{self.index}", json.dumps(failures))
    everyone = list(range(self.count))
    self.client.get_live_nodes(everyone)  # returns once every live process is here
    self._owner, self._round, self._left = None, self._round + 1, leave
    if not self.leader:
      if leave:
        jax.distributed.shutdown()
      return None
    if leave:
      self.client.get_live_nodes(everyone)  # returns once the leader is alone
    reported = {int(k.rsplit("/", 1)[1]): json.loads(v)
                for k, v in self.client.key_value_dir_get(prefix + "/")}
    merged = [f for p in sorted(reported) for f in reported[p]]
    failed = {f["case_id"] for f in merged}
    silent = sorted(set(range(self.count)) - set(reported))
    expected = [c for c in cases if c.case_id in owner and c.case_id not in failed]
    # Cases of processes that finished must appear; wait a little for a slow file system.
    waiting = [c for c in expected if owner[c.case_id] in reported]
    deadline = time.monotonic() + visible_timeout
    while waiting and time.monotonic() < deadline:
      waiting = [c for c in waiting if not case_file(c).exists()]
      if waiting:
        time.sleep(1.0)
    missing = [c.case_id for c in expected if not case_file(c).exists()]
    if missing:
      raise IncompleteRun(missing, silent)
    return merged


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *,
               heartbeat_timeout_seconds: int = 100) -> Team:
  """`jax.distributed.initialize` with recoverability on; returns this process's `Team`.

  Arguments left None are auto-detected by JAX where it can (SLURM, Open MPI, Cloud TPU,
  Kubernetes); see `jax.distributed.initialize`. Must run before any JAX computation.
  """
  jax.config.update("jax_enable_recoverability", True)
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             heartbeat_timeout_seconds=heartbeat_timeout_seconds)
  from jax._src import distributed as _state  # the runtime's client: key-value store, barrier
  client = _state.global_state.client
  team = Team(jax.process_index(), jax.process_count(), client)
  print(f"process {team.index} of {team.count} (jax.distributed, pid {os.getpid()}, "
        f"{jax.local_device_count()} local device(s))", file=sys.stderr)
  return team


__all__ = ["IncompleteRun", "Team", "case_cost", "deal", "initialize"]
