"""A run folder a user can trust (`sgscn_jax.running.folder`), through the command line:
path mistakes are one line with exit 2, a folder holds one configuration's results, and one
run writes it at a time."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sgscn_jax.core.config import Config
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.running import folder
from sgscn_jax.running.images import RunOptions

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
DEMO = ["--demo_n=1", "--demo_size=32", "--n_channels=8", "--iterations=2"]


def _start(module, *flags, cwd=ROOT):
  return subprocess.Popen([sys.executable, "-m", module, *flags], cwd=cwd, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
  out, err = proc.communicate(timeout=600)
  return proc.returncode, out, err


def _run(module, *flags):
  return _finish(_start(module, *flags))


_HOLD = """
import sys, time
from sgscn_jax.running import folder
folder.RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(out):
  """A real second process that takes `out`'s lock and keeps it until killed."""
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], env=ENV,
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held"
  return proc


def _cannot_make(path):
  try:
    os.mkdir(path)
  except OSError:
    return True
  os.rmdir(path)
  return False


def test_path_mistakes_are_one_line_with_exit_2(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("not a folder")
  cases = {  # what the user typed -> what the one line must say
      ("experiments.segment", f"--out_dir={a_file}"): f"--out_dir {a_file} is a file",
      ("experiments.segment", f"--out_dir={a_file}/run"): f"{a_file} is a file",
      ("experiments.segment", "--dataset=ph2", f"--data_dir={a_file}"): str(a_file),
      ("experiments.segment", "--dataset=folder", f"--images={a_file}"): str(a_file),
      ("experiments.evaluate", f"--out_dir={a_file}"): f"--out_dir {a_file} is a file",
      ("experiments.evaluate", f"--out_dir={tmp_path / 'none'}"): "does not exist",
      ("experiments.reproduce_tables", "--quick", "--methods=kmeans:2", "--noablation",
       f"--out_dir={a_file}"): f"{a_file} is a file",
  }
  if _cannot_make("/sys/sgscn_run"):   # not writable, even for root (sysfs)
    cases[("experiments.segment", "--out_dir=/sys/sgscn_run")] = "/sys/sgscn_run"
  procs = {args: _start(args[0], *args[1:], *DEMO) for args in cases}  # all at once
  for args, proc in procs.items():
    code, _, err = _finish(proc)
    assert code == 2, (args, err[-2000:])
    assert "Traceback" not in err, (args, err[-2000:])
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and cases[args] in errors[0], (args, err[-2000:])


def test_a_folder_holds_one_configuration(tmp_path):
  out = tmp_path / "r1"
  out.mkdir()
  holder = _holder(out)
  holder.send_signal(signal.SIGKILL)   # dies holding the lock: its file stays behind
  holder.wait()
  assert json.loads((out / folder.LOCK_NAME).read_text())["pid"] == holder.pid
  code, _, err = _run("experiments.segment", f"--out_dir={out}", *DEMO)
  assert code == 0, err[-2000:]
  assert f"took over the lock of a run that is gone (pid {holder.pid} on " in err
  assert not (out / folder.LOCK_NAME).exists()   # released at the end of the run
  before = (out / "cases" / "synth0_000.json").read_bytes()

  # Result settings: refused, naming each with its old and new value and both ways out.
  code, _, err = _run("experiments.segment", f"--out_dir={out}", *DEMO, "--iterations=3",
                      "--seed=1", "--size=24")
  assert code == 2 and "Traceback" not in err, err[-2000:]
  line = next(x for x in err.splitlines() if x.startswith("error: "))
  for said in ("iterations 2 -> 3", "seed 0 -> 1", "size none -> 24", "new --out_dir",
               "--overwrite"):
    assert said in line, line
  assert json.loads((out / "run.json").read_text())["config"]["iterations"] == 2
  assert (out / "cases" / "synth0_000.json").read_bytes() == before

  # Output-only settings pass silently; rescored ones (the object step) pass with one line.
  code, _, err = _run("experiments.segment", f"--out_dir={out}", *DEMO, "--montage=1",
                      "--selection=central", "--object_rim=0")
  assert code == 0, err[-2000:]
  notes = [x for x in err.splitlines() if x.startswith("resuming ")]
  assert len(notes) == 1 and "objects.rim_band 8 -> 0" in notes[0], err
  assert "montage" not in notes[0] and "overlay" not in notes[0]
  row = json.loads((out / "cases" / "synth0_000.json").read_text())
  assert row["iterations"] == json.loads(before)["iterations"]   # not segmented again
  assert "rim_band=0" in row["object_config"].split(",")   # its object found again

  # --overwrite recomputes with the new settings, and the folder says what made it.
  code, _, err = _run("experiments.segment", f"--out_dir={out}", *DEMO, "--iterations=3",
                      "--early_stop=false", "--overwrite")
  assert code == 0, err[-2000:]
  assert "--overwrite: removed the 1 finished case(s)" in err
  assert json.loads((out / "run.json").read_text())["config"]["iterations"] == 3
  assert json.loads((out / "cases" / "synth0_000.json").read_text())["iterations"] == 3
  assert json.loads((out / "summary.json").read_text())["iterations"]["mean"] == 3


def test_one_writer_per_folder(tmp_path):
  out = tmp_path / "r"
  out.mkdir()
  holder = _holder(out)
  try:
    code, _, err = _run("experiments.segment", f"--out_dir={out}", *DEMO)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert f"another run is writing to {out} (pid {holder.pid} on " in err
    assert "wait for it to finish or choose another --out_dir" in err
    assert not (out / "cases").exists() and not (out / "run.json").exists()
  finally:
    holder.kill()
    holder.wait()


def test_settings_check_reads_older_run_json_at_defaults(tmp_path):
  """A field run.json lacks (added later) counts at its default; only result settings
  refuse; rescored ones are reported."""
  options = RunOptions(out_dir=str(tmp_path), objects=ObjectConfig())
  settings = folder.settings_of(Config(), options, "demo")
  info = json.loads(json.dumps(settings))
  del info["options"]["gt_clipped"], info["config"]["stop_rule"]   # an older folder
  (tmp_path / "run.json").write_text(json.dumps(info))
  check = lambda now, **kw: folder.check_settings(tmp_path, now, Config, RunOptions,
                                                  has_results=True, **kw)
  assert check(settings) == []
  assert check(folder.settings_of(Config(), RunOptions(str(tmp_path), batch_size=7,
                                                       objects=ObjectConfig()), "demo")) == []
  notes = check(folder.settings_of(Config(), RunOptions(str(tmp_path), gt_clipped=5,
                                                        objects=ObjectConfig()), "demo"))
  assert len(notes) == 1 and "gt_clipped none -> 5" in notes[0]
  with pytest.raises(folder.RunFolderError, match=r"dataset demo -> ph2"):
    check(folder.settings_of(Config(), options, "ph2"))
  with pytest.raises(folder.RunFolderError, match=r"stop_rule min_labels -> stable"):
    check(folder.settings_of(Config(stop_rule="stable"), options, "demo"))
  assert folder.check_settings(tmp_path, folder.settings_of(Config(iterations=1), options),
                               Config, RunOptions, has_results=False) == []
