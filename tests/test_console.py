"""The command line's conventions: quiet by default, usage errors exit 2, Ctrl-C exits 130
with one line and keeps every finished case, and a closing block says what was found."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import write_lesion_folder

from sgscn_jax.reporting import console

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--iterations=2", "--n_channels=8", "--size=native", "--batch_size=1"]


def _segment(*flags, **kw):
  return subprocess.run([sys.executable, "-m", "experiments.segment", *flags], cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                        text=True, timeout=600, **kw)


def test_usage_errors_exit_2_and_name_the_problem():
  bad_value = _segment("--dataset=nope")
  assert bad_value.returncode == 2 and "nope" in bad_value.stderr
  extra = _segment("stray_argument")
  assert extra.returncode == 2 and "unexpected arguments: ['stray_argument']" in extra.stderr
  missing = _segment("--dataset=ph2")
  assert missing.returncode == 2 and "--dataset ph2 needs --data_dir" in missing.stderr


def test_a_run_is_quiet_ends_with_the_closing_block_and_keeps_an_empty_mask_apart(tmp_path):
  import imageio.v3 as iio
  import numpy as np
  write_lesion_folder(tmp_path / "data", n=3)
  mask = tmp_path / "data" / "masks" / "case1.png"
  iio.imwrite(mask, np.zeros_like(iio.imread(mask)))
  out = tmp_path / "out"
  proc = _segment("--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
                  f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", *TINY)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # quiet, and a closing block
  assert "Unable to initialize backend" not in proc.stderr and " xla_bridge.py" not in proc.stderr
  tail = proc.stdout.strip().splitlines()[-3:]
  assert tail[0].startswith("done: 3 of 3 cases (0 failed) in ")
  assert tail[1].startswith("mean DSC: paper ") and ", object " in tail[1]
  assert tail[2] == f"summary: {out}/summary.md; report: {out}/report.html"
  summary_md = (out / "summary.md").read_text()
  for name in ("paper", "paper+fill", "object", "central"):   # each protocol once
    assert summary_md.count(f"### sgscn, {name}\n") == 1, name
  assert summary_md.count("Iterations ") == 1
  # the empty mask: warned naming the file, marked, out of the means, the rule stated
  assert f"warning: case1: the mask {mask} is empty" in proc.stderr
  assert "RuntimeWarning" not in proc.stderr
  rows = {p.stem: json.loads(p.read_text()) for p in (out / "cases").glob("*.json")}
  assert rows["case1"]["empty_mask"] is True and "empty_mask" not in rows["case0"]
  summary = json.loads((out / "summary.json").read_text())
  assert summary["empty_masks"] == ["case1"]
  dice = summary["metrics"]["largest_overlap.dice"]
  assert dice["n"] == 2 and np.isclose(dice["mean"], np.mean(
      [rows[c]["largest_overlap.dice"] for c in ("case0", "case2")]))
  assert all(np.isfinite(summary["metrics"][f"largest_overlap.{m}"]["mean"])
             for m in ("xor", "hd95"))
  assert "Empty ground truth in 1 case(s) (case1)" in summary_md
  assert all(r["intensity"] == "rgb; uint8 / 255" for r in rows.values())


def test_ctrl_c_exits_130_with_one_line_and_keeps_finished_cases(tmp_path):
  write_lesion_folder(tmp_path / "data", n=6)
  out = tmp_path / "out"
  flags = ["--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
           f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", *TINY]
  proc = subprocess.Popen([sys.executable, "-m", "experiments.segment", *flags], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not list((out / "cases").glob("*.json")) and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  _, stderr = proc.communicate(timeout=300)
  done = sorted(p.stem for p in (out / "cases").glob("*.json"))
  if len(done) == 6:  # the run finished before the signal arrived: nothing to interrupt
    assert proc.returncode == 0
    return
  assert proc.returncode == 130, stderr[-2000:]
  assert "Traceback" not in stderr
  interrupted = [line for line in stderr.splitlines() if "interrupted" in line]
  assert interrupted == [f"interrupted: finished cases are saved in {out}; rerun the same "
                         "command to finish the rest"]
  assert done and all(json.loads((out / "cases" / f"{c}.json").read_text())["case_id"] == c
                      for c in done)
  again = _segment(*flags)  # the rerun finishes the rest
  assert again.returncode == 0 and f"resuming: {len(done)} of 6" in again.stderr


def test_closing_block_without_masks_has_no_scores():
  text = console.closing_block({"finished": 3, "cases": 4, "failed": 1, "metrics": {}},
                               "runs/x", 12.3)
  assert "done: 3 of 4 cases (1 failed) in 12 s -> runs/x" in text
  assert "mean DSC" not in text and "failed cases: runs/x/failures.csv" in text


def test_a_huge_image_is_refused_for_its_real_reason(tmp_path, monkeypatch):
  import imageio.v3 as iio
  import numpy as np
  import PIL.Image
  import pytest
  from sgscn_jax.data import image_io
  from sgscn_jax.data.decode import ImageReadError
  path = tmp_path / "huge.png"
  iio.imwrite(path, np.zeros((64, 64), np.uint8))
  monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels > 2 x the limit
  with pytest.raises(ImageReadError, match="huge.png.*cause: DecompressionBombError: Image size"):
    image_io.read_image(path)


def test_a_working_size_that_cannot_fit_is_refused_before_anything_runs(tmp_path):
  write_lesion_folder(tmp_path / "data", n=2)
  out = tmp_path / "out"
  proc = _segment("--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
                  f"--out_dir={out}", "--size=30000", "--iterations=1")
  assert proc.returncode == 3, proc.stderr[-2000:]
  assert "refusing to start: working size 22496x30000 with 100 channels needs about" in proc.stderr
  assert "Sizes that would fit: --size " in proc.stderr
  assert not (out / "cases").exists() and not (out / "labels").exists()


def test_a_huge_image_fails_alone_and_files_that_are_not_images_are_named(tmp_path):
  import imageio.v3 as iio
  import numpy as np
  write_lesion_folder(tmp_path / "data", n=2)
  images = tmp_path / "data" / "images"
  # 13600 x 13200 = 179.5 M pixels: over twice Pillow's decompression-bomb limit
  iio.imwrite(images / "huge.png", np.zeros((13600, 13200), np.uint8))
  (images / "notes.txt").write_text("not an image")
  out = tmp_path / "out"
  proc = _segment("--dataset=folder", f"--images={images}", f"--out_dir={out}",
                  "--iterations=2", "--n_channels=8")
  assert proc.returncode == 1, proc.stderr[-2000:]
  failures = (out / "failures.csv").read_text()
  assert "huge.png" in failures and "DecompressionBombError" in failures
  assert sorted(p.stem for p in (out / "cases").glob("*.json")) == ["case0", "case1"]
  assert "skipping 1 file(s)" in proc.stderr and "notes.txt" in proc.stderr
  assert ".png" in proc.stderr and ".tif" in proc.stderr
  only_text = tmp_path / "text"
  only_text.mkdir()
  (only_text / "a.txt").write_text("x")
  proc = _segment("--dataset=folder", f"--images={only_text}", f"--out_dir={tmp_path / 'o2'}")
  assert proc.returncode == 2
  assert "no image cases found" in proc.stderr and "accepted extensions: .png" in proc.stderr
