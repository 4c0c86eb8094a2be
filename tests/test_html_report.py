"""report.html: self-contained, every link and picture it names exists, the case table
sorts; rendered in headless Chromium where that is installed."""

import html
import html.parser
import shutil
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import write_lesion_folder

from sgscn_jax import Config
from sgscn_jax.data.datasets import folder
from sgscn_jax.evaluation.objects import ObjectConfig
from sgscn_jax.reporting import html_report
from sgscn_jax.running import images as image_runs
from sgscn_jax.running import scoring


class _Links(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.links, self.rows, self.headers, self.scripts = [], 0, [], 0

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    for name in ("href", "src"):
      if attrs.get(name):
        self.links.append(attrs[name])
    self.rows += tag == "tr"
    self.scripts += tag == "script"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  cases = write_lesion_folder(root / "data", n=3)
  options = image_runs.RunOptions(out_dir=str(root / "out"), batch_size=1, montage_cases=2,
                                  objects=ObjectConfig(polarity="dark"))
  image_runs.run_dataset(cases, folder.load_case, Config(n_channels=8, iterations=3), options)
  return root / "out"


def test_every_link_is_relative_and_exists(run):
  text = (run / html_report.REPORT).read_text()
  parser = _Links()
  parser.feed(text)
  assert parser.links, "the report links nothing"
  for link in parser.links:
    assert "://" not in link and not link.startswith("/"), link   # no server, no network
    assert (run / link).is_file(), link
  assert {f"overlays/case{i}.png" for i in range(3)} <= set(parser.links)
  assert {f"objects/case{i}.png" for i in range(3)} <= set(parser.links)
  assert {f"labels_colour/case{i}.png" for i in range(3)} <= set(parser.links)
  assert parser.scripts == 1 and "<svg" in text                  # the sorter, the plots
  for name in ("paper", "paper+fill", "object", "central"):
    assert f"<th>{name} DSC</th>" in text
  plain = html.unescape(text)
  assert '"n_channels": 8' in plain and '"jax":' in plain          # settings and versions


def test_sparkline_scales_values_into_the_box():
  svg = html_report.sparkline([3.0, 1.0, 2.0], width=10, height=10)
  assert 'points="0.0,2.0 5.0,8.0 10.0,5.0"' in svg
  assert html_report.sparkline([1.0]) == ""


def test_renders_in_headless_chromium(run, tmp_path):
  browser = shutil.which("chromium") or shutil.which("chromium-browser")
  if browser is None:
    pytest.skip("chromium is not installed: the page is checked by parsing only")
  shot = tmp_path / "report.png"
  proc = subprocess.run(
      [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
       "--disable-background-networking", "--disable-component-update", "--disable-sync",
       f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
       "--window-size=1200,900", (run / html_report.REPORT).as_uri()],
      capture_output=True, text=True, timeout=120)
  assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
  dom = subprocess.run(
      [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
       "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile2'}",
       "--dump-dom", (run / html_report.REPORT).as_uri()],
      capture_output=True, text=True, timeout=120).stdout
  assert "case0" in dom and "<table class=\"sortable\">" in dom


def test_a_collapsed_case_is_flagged_warned_and_highlighted(tmp_path, capsys):
  from sgscn_jax import registry
  cases = write_lesion_folder(tmp_path / "data", n=2)
  iio.imwrite(cases[1].image_path, np.full((24, 32), 128, np.uint8))   # constant: one label
  otsu = registry.get_method("otsu")
  options = image_runs.RunOptions(out_dir=str(tmp_path / "out"), batch_size=1, objects=None,
                                  method_name="otsu")
  result = image_runs.run_dataset(cases, folder.load_case, otsu.default_config, options,
                                  otsu)
  rows = {r["case_id"]: r for r in result.rows}
  assert rows["case1"]["collapsed"] is True and rows["case1"]["largest_share"] == 1.0
  assert rows["case0"]["collapsed"] is False and rows["case0"]["largest_share"] < 0.95
  err = capsys.readouterr().err
  assert "warning: case1: collapsed label map" in err and "case0: collapsed" not in err
  text = (tmp_path / "out" / html_report.REPORT).read_text()
  assert text.count("<tr class='collapsed'>") == 1
  assert "1 of 2 cases collapsed" in text


def test_collapse_fields_threshold():
  labels = np.zeros((10, 10), np.int32)
  labels[0, :6] = 1                                                  # 94 % in label 0
  assert scoring.collapse_fields(labels) == {"largest_share": 0.94, "collapsed": False}
  labels[0, :5] = 0                                                  # 95 %
  assert scoring.collapse_fields(labels)["collapsed"] is True
  assert scoring.collapse_fields(np.zeros((2, 3, 4), np.int32))["collapsed"] is True  # 3D
