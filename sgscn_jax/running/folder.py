"""A run folder a user can trust: made with one-line errors, written by one run at a time,
and holding the results of one configuration.

    out = make(out_dir)                      # RunFolderError naming the path and the cause
    with RunLock(out):                       # run.lock: one writer; a dead holder's is taken
      notes = check_settings(out, now, ...)  # RunFolderError if results would mix settings

Settings fall into three classes (each options dataclass names its own):

* result settings: the method, its config, the data set and every run option not named
  below (working size, seed, standardisation, hair removal, seeds per image, ...). A
  finished case depends on them, so a resume with other values is refused, unless the user
  asks to recompute (`overwrite`), which first removes the finished cases' records;
* rescored settings (`RESCORED`, e.g. the object step's settings, the INFLATED protocol's
  radius): finished cases are brought up to date from their saved label maps on resume, so
  a change proceeds, and `check_settings` returns a line saying so;
* output-only settings (`OUTPUT_ONLY`, e.g. the folder itself, overlays, montage, batch
  size: each case's key and result do not depend on the batch): ignored.

A field absent from an older run.json counts at its default (added later with the default
that reproduces the older behaviour).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from sgscn_jax.data import files
from sgscn_jax.errors import UserError

LOCK_NAME = "run.lock"
RUN_JSON = "run.json"
# What a recompute removes: the finished cases' records and what is derived from them.
RECORDS = ("cases", "results.csv", "summary.json", "summary.md", "failures.csv", "report.html")


class RunFolderError(UserError):
  """A run folder that cannot be used as asked; the message is one line for the user."""


def _cause(error: OSError) -> str:
  return error.strerror or type(error).__name__


def make(out_dir: os.PathLike | str) -> Path:
  """Makes `out_dir` (and its parents) and checks that files can be created in it.

  Raises:
    RunFolderError: it is a file, under a file, cannot be made or is not writable, with the
      path and the cause in one line.
  """
  out = Path(out_dir)
  if out.exists() and not out.is_dir():
    raise RunFolderError(f"--out_dir {out} is a file, not a folder; name a folder")
  blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
  if blocker is not None:
    raise RunFolderError(f"cannot make the output folder {out}: {blocker} is a file")
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise RunFolderError(f"cannot make the output folder {out}: {_cause(e)}") from None
  probe = out / f".write-test-{os.getpid()}"
  try:
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as e:
    raise RunFolderError(f"cannot write in the output folder {out}: {_cause(e)}") from None
  return out


# ------------------------------------------------------------------------------ lock


def _holder_text(holder: Mapping[str, Any]) -> str:
  command = " ".join(map(str, holder.get("argv", [])))
  return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
          f"{holder.get('started', '?')}" + (f": {command}" if command else ""))


class RunLock:
  """`out/run.lock`, held (`fcntl.flock`, exclusive) for the whole run.

  The file holds its holder's pid, host, start time and command line. A second run into
  the same folder finds the lock held and is refused (`RunFolderError` naming the holder).
  The kernel releases a `flock` when its process ends, however it ends, so a lock file
  whose lock is free belongs to a run that is gone: it is taken over with a warning.
  Released (and the file removed) on exit from the `with` block.
  """

  def __init__(self, out: os.PathLike | str):
    self.path = Path(out) / LOCK_NAME
    self.fd: Optional[int] = None
    self.took_over: Optional[Dict[str, Any]] = None

  def acquire(self) -> "RunLock":
    while True:
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      except OSError as e:
        raise RunFolderError(f"cannot make the lock file {self.path}: {_cause(e)}") from None
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        holder = _read_holder(fd)
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES):
          raise RunFolderError(f"cannot lock {self.path}: {_cause(e)}") from None
        raise RunFolderError(
            f"another run is writing to {self.path.parent} ({_holder_text(holder)}); wait for "
            "it to finish or choose another --out_dir") from None
      # The holder before us may have removed the file between our open and our lock:
      # then we locked a file nobody else will see, and must start again.
      try:
        same = os.path.samestat(os.fstat(fd), os.stat(self.path))
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    previous = _read_holder(fd)
    if previous:
      self.took_over = previous
      print(f"warning: {self.path}: took over the lock of a run that is gone "
            f"({_holder_text(previous)})", file=sys.stderr)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": list(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    os.fsync(fd)
    self.fd = fd
    return self

  def release(self) -> None:
    if self.fd is None:
      return
    try:
      self.path.unlink()
    except FileNotFoundError:
      pass
    os.close(self.fd)   # closing releases the flock
    self.fd = None

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _read_holder(fd: int) -> Dict[str, Any]:
  try:
    text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
    return json.loads(text) if text else {}
  except (OSError, ValueError):
    return {"pid": "?", "host": "?", "argv": ["(unreadable lock file)"]}


# -------------------------------------------------------------------------- settings


def settings_of(config: Any, options: Any, dataset: Optional[str] = None) -> Dict[str, Any]:
  """The JSON form of a run's settings, as run.json stores them (`config`, `options`, the
  data set), for `check_settings`."""
  return json.loads(files.json_text({"config": dataclasses.asdict(config),
                                     "options": dataclasses.asdict(options),
                                     "dataset": dataset}))


def _flat(prefix: str, value: Any) -> Dict[str, Any]:
  if isinstance(value, dict):
    out: Dict[str, Any] = {}
    for k, v in value.items():
      out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
    return out
  return {prefix: value}


def _defaults(cls) -> Dict[str, Any]:
  """A dataclass's field defaults, JSON form (fields without a default are left out)."""
  out = {}
  for f in dataclasses.fields(cls):
    if f.default is not dataclasses.MISSING:
      out[f.name] = f.default
    elif f.default_factory is not dataclasses.MISSING:
      out[f.name] = f.default_factory()
  return json.loads(files.json_text(out))


def _show(value: Any) -> str:
  return "none" if value is None else json.dumps(value) if not isinstance(value, str) else value


def _differences(old: Mapping[str, Any], new: Mapping[str, Any],
                 keys: Sequence[str]) -> List[str]:
  return [f"{k} {_show(old.get(k))} -> {_show(new.get(k))}" for k in keys
          if old.get(k) != new.get(k)]


def saved_settings(out: Path) -> Optional[Dict[str, Any]]:
  """What `out/run.json` says the finished cases were made with (None: no run.json)."""
  path = out / RUN_JSON
  if not path.exists():
    return None
  try:
    info = json.loads(path.read_text())
  except ValueError as e:
    raise RunFolderError(f"{path} is not readable JSON ({e}); move it away to start "
                         "afresh") from None
  return {"config": info.get("config", {}), "options": info.get("options", {}),
          "dataset": info.get("dataset")}


def check_settings(out: Path, now: Mapping[str, Any], config_type, options_type, *,
                   has_results: bool, overwrite: bool = False) -> List[str]:
  """Compares the settings of a run about to start with those of the folder's finished
  cases (`out/run.json`).

  Args:
    out: the run folder.
    now: `settings_of(...)` of the new run.
    config_type, options_type: the dataclasses of `now["config"]` and `now["options"]`;
      `options_type.OUTPUT_ONLY` and `options_type.RESCORED` name their option classes.
    has_results: whether any case is finished (a folder without results takes any settings).
    overwrite: recompute: the finished cases' records are removed (`RECORDS`) instead of
      refusing a difference in result settings.

  Returns:
    Lines to show the user (rescored settings that changed; what a recompute removed).

  Raises:
    RunFolderError: result settings differ and `overwrite` is off: one line naming each
      differing setting with its old and new value, and the two ways out.
  """
  old = saved_settings(out) if has_results else None
  if old is None:
    return []
  output_only = set(getattr(options_type, "OUTPUT_ONLY", ()))
  rescored = set(getattr(options_type, "RESCORED", ()))
  old_config = _flat("", {**_defaults(config_type), **(old["config"] or {})})
  new_config = _flat("", dict(now["config"]))
  old_options = _flat("", {**_defaults(options_type), **(old["options"] or {})})
  new_options = _flat("", dict(now["options"]))

  def option_class(key: str) -> str:
    top = key.split(".")[0]
    return "output" if top in output_only else "rescored" if top in rescored else "result"

  changed = _differences(old_config, new_config, sorted(set(old_config) | set(new_config)))
  keys = sorted(set(old_options) | set(new_options))
  changed += _differences(old_options, new_options,
                          [k for k in keys if option_class(k) == "result"])
  if old.get("dataset") is not None and now.get("dataset") is not None:
    changed += _differences(old, now, ["dataset"])
  notes = []
  if changed and not overwrite:
    raise RunFolderError(
        f"{out} holds results made with other settings ({'; '.join(changed)}); use a new "
        "--out_dir, or --overwrite to recompute its cases with the new settings")
  if changed or (overwrite and has_results):
    removed = remove_records(out)
    notes.append(f"--overwrite: removed the {removed} finished case(s) of {out}"
                 + (f" (made with {'; '.join(changed)})" if changed else "")
                 + "; every case is recomputed")
    return notes
  rescore = _differences(old_options, new_options,
                         [k for k in keys if option_class(k) == "rescored"])
  if rescore:
    notes.append(f"resuming {out} with settings that only rescore ({'; '.join(rescore)}): "
                 "finished cases are rescored from their saved label maps")
  return notes


def remove_records(out: Path) -> int:
  """Removes the finished cases' records (`RECORDS`); returns how many cases there were.
  Label maps and images of those cases are overwritten as the cases are redone."""
  cases = out / "cases"
  count = len(list(cases.glob("*.json"))) if cases.is_dir() else 0
  for name in RECORDS:
    path = out / name
    if path.is_dir():
      for child in path.glob("*.json"):
        child.unlink()
    elif path.exists():
      path.unlink()
  return count
