"""The benchmark script runs end to end on a tiny setting (it asserts no speed: speed
targets are met in the benchmark itself, never in a unit test)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runs_and_reports_without_recompiling(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.benchmark", "--size=16", "--n_channels=4", "--n1=1",
       "--n2=2", "--repeats=1", "--batch_sizes=", "--notorch", f"--json_out={out}"],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  loop = report["loop"]
  assert "error" not in loop, loop
  assert math.isfinite(loop["ms_per_iteration"]) and loop["recompiled"] is False
  assert isinstance(loop["gflops_per_s"], float) and loop["peak_rss_mib"] > 0  # values: noise here
