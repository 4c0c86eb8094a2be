"""The paper's comparison: table builder, figures, run plan, and the script end to end."""

import csv
import functools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import write_lesion_folder

from sgscn_jax import Config
from sgscn_jax.reporting import charts
from sgscn_jax.running import comparison
from sgscn_jax.running import images as image_runs
from sgscn_jax.data import datasets
from sgscn_jax.reporting import tables
from sgscn_jax.baselines import KMeansConfig

ROOT = Path(__file__).resolve().parents[1]


def _summary(dice_mean, dice_std, seconds_mean, n=3, hd95=(4.0, 1.0)):
  """A hand-made `summary.json`-like dict (fractions; JSON-style strings for inf/nan)."""
  stats = lambda m, s: {"mean": m, "std": s, "n": n, "n_nan": 0}
  metrics = {"largest_overlap.dice": stats(dice_mean, dice_std),
             "largest_overlap.hd95": stats(*hd95),
             "largest_overlap.xor_over_intersection": stats("inf", "nan"),
             "central.dice": stats(dice_mean / 2, dice_std)}
  return {"metrics": metrics, "seconds_per_case": stats(seconds_mean, 0.5), "finished": n}


# ----------------------------------------------------------------------------- tables


def test_cells_mean_and_std_over_seeds_and_images():
  column = tables.Column("a", "A", [_summary(0.6, 0.1, 2.0), _summary(0.8, 0.3, 4.0)])
  cells = tables.column_cells(column)
  dsc = cells["dice"]
  assert dsc.mean == pytest.approx(70.0)
  assert dsc.std_seeds == pytest.approx(math.sqrt(((60 - 70) ** 2 + (80 - 70) ** 2) / 1))
  assert dsc.std_images == pytest.approx(20.0)
  assert (dsc.n_images, dsc.n_seeds) == (3, 2)
  assert cells["hd95"].mean == pytest.approx(4.0)          # pixels: not scaled
  assert cells["hd95"].std_seeds == pytest.approx(0.0)
  assert math.isinf(cells["xor_over_intersection"].mean)   # "inf" from JSON stays inf
  assert math.isnan(cells["xor_over_intersection"].std_seeds)
  assert cells["jaccard"].n_seeds == 0                     # absent from the summaries
  assert cells["seconds_per_image"].mean == pytest.approx(3.0)
  assert cells["total_seconds"].mean == pytest.approx(2.0 * 3 + 4.0 * 3)
  central = tables.column_cells(column, "central")["dice"]
  assert central.mean == pytest.approx(35.0)
  one = tables.column_cells(tables.Column("b", "B", [_summary(0.5, 0.2, 1.0)]))["dice"]
  assert one.mean == pytest.approx(50.0) and math.isnan(one.std_seeds)


def test_markdown_and_csv_layout():
  columns = [tables.Column("sgscn", "SGSCN", [_summary(0.6, 0.1, 2.0), _summary(0.8, 0.3, 4.0)],
                           tables.paper_ph2("sgscn", None)),
             tables.Column("kmeans_k5", "k-means k=5", [_summary(0.5, 0.2, 1.0)] * 2,
                           tables.paper_ph2("kmeans", 5))]
  md = tables.table_markdown(columns, "T", findings=["ranked"], notes=["protocol line"])
  lines = md.splitlines()
  assert lines[2] == "| metric | SGSCN | k-means k=5 |"
  assert "| DSC (%) ↑ | 70.0 ± 14.1 | 50.0 ± 0.0 |" in lines
  assert "| HD95 (px) ↓ | 4.0 ± 0.0 | 4.0 ± 0.0 |" in lines
  assert "| Jaccard (%) ↑ | – | – |" in lines
  assert "| XOR/I (%) ↓ | inf | inf |" in lines
  assert "| DSC, paper (%, its whole data set) | 83.4 | – |" in lines
  assert "| HM as published, paper (%, definition unstated) | 32.3 | – |" in lines
  assert "| images | 3 | 3 |" in lines
  for m in tables.METRICS:
    assert m.definition in md
  assert "- ranked" in md and "- protocol line" in md
  rows, header = tables.table_csv_rows(columns)
  assert header[:7] == ["metric", "label", "unit", "sgscn", "sgscn.std_seeds",
                        "sgscn.std_images", "sgscn.n_seeds"]
  keys = [r["metric"] for r in rows]
  assert keys == [m.key for m in tables.METRICS] + [
      "seconds_per_image", "total_seconds", "images", "paper.dice", "paper.xor",
      "paper.hm_published"]
  dice = rows[0]
  assert dice["sgscn"] == pytest.approx(70.0) and dice["sgscn.std_images"] == pytest.approx(20.0)
  assert dice["kmeans_k5.std_seeds"] == pytest.approx(0.0)
  assert rows[-3]["sgscn"] == 83.4 and math.isnan(rows[-3]["kmeans_k5"])
  # no paper rows without published numbers
  plain = [c._replace(paper={}) for c in columns]
  assert ", paper (" not in tables.table_markdown(plain, "T")
  assert tables.ranking(columns) == "SGSCN 70.0 > k-means k=5 50.0"


def test_an_infinite_mean_says_which_rows_made_it():
  inf, nan = float("inf"), float("nan")
  key = "largest_overlap.xor_over_intersection"
  rows = [[{"case_id": "x", key: 0.5}, {"case_id": "y", key: "inf"}, {"case_id": "z", key: nan}],
          [{"case_id": "x", key: inf}, {"case_id": "y", key: 0.2}, {"case_id": "z", key: 0.1}]]
  xor_i = tables.METRICS[4]
  assert xor_i.key == "xor_over_intersection"
  a = tables.Column("a", "A", [_summary(0.6, 0.1, 2.0)] * 2, rows=rows)
  # NaN (not scored) is left out of the count, +inf and "inf" are counted.
  assert tables.infinite_counts(a, xor_i) == (2, 5)
  finite = dict(_summary(0.6, 0.1, 2.0))
  finite["metrics"] = dict(finite["metrics"])
  finite["metrics"][key] = {"mean": 0.3, "std": 0.1, "n": 3, "n_nan": 0}
  b = tables.Column("b", "B", [finite] * 2, rows=[[{"case_id": "x", key: 0.3}]] * 2)
  md = tables.table_markdown([a, b], "T")
  assert "| XOR/I (%) ↓ | inf | 30.0 ± 0.0 |" in md
  note = [line for line in md.splitlines() if line.startswith("XOR/I is infinite")]
  assert len(note) == 1
  assert note[0].endswith("run's mean infinite: A in 2 of 5 case-seed pairs.")
  assert "A∩B = ∅" in note[0] and "B in" not in note[0]
  # Without per-case rows the column is still named.
  assert "infinite: A." in tables.table_markdown([a._replace(rows=())], "T")
  # No infinite cell, no note.
  assert "is infinite" not in tables.table_markdown([b], "T")


def test_paper_numbers_follow_reference():
  assert tables.paper_ph2("kmeans", 3) == {"dice": 71.3, "hm_published": 130.8, "xor": 41.3}
  assert tables.paper_ph2("kmeans", 4)["dice"] == 67.7
  assert tables.paper_ph2("kmeans", 6) == {}
  assert tables.paper_ph2("iic", 3)["dice"] == 81.2
  assert tables.paper_ph2("deepcluster", 5)["xor"] == 31.3
  assert tables.paper_figures("ultrasound", "kmeans", 6) == {"dice": 39.3}
  assert tables.paper_figures("ultrasound", "sgscn", None) == {"dice": 63.2}
  assert tables.paper_figures("lung_ct", "sgscn", None) == {}


def _rows(dice_by_case):
  return [{"case_id": c, "largest_overlap.dice": d, "largest_overlap.hd95": 10 * d}
          for c, d in dice_by_case.items()]


def test_paired_difference_matches_a_numpy_computation():
  nan = float("nan")
  a = tables.Column("a", "A", [], rows=[_rows({"x": 0.9, "y": 0.5, "z": 0.7, "w": 0.2}),
                                        _rows({"x": 0.8, "y": 0.6, "z": 0.6, "w": nan})])
  b = tables.Column("b", "B", [], rows=[_rows({"x": 0.7, "y": 0.6, "z": 0.7, "w": 0.1}),
                                        _rows({"x": 0.9, "y": 0.3, "z": 0.5})])
  p = tables.paired_difference(a, b)
  # "w" is missing or not finite in seed 1, so it is left out of every seed.
  d = 100 * np.array([[0.2, -0.1, 0.0], [-0.1, 0.3, 0.1]])
  np.testing.assert_allclose(p.per_seed, d.mean(axis=1))
  np.testing.assert_allclose(p.mean, d.mean())
  assert (p.wins, p.losses, p.n) == (3, 2, 6)
  per_case = d.mean(axis=0)
  draws = np.random.default_rng(0).integers(0, 3, size=(2000, 3))
  np.testing.assert_allclose(p.ci95, np.percentile(per_case[draws].mean(axis=1), [2.5, 97.5]))
  assert p.ci95[0] < p.mean < p.ci95[1]
  # A lower-is-better metric flips what counts as a win, not the sign of the difference.
  hd = tables.paired_difference(a, b, tables.METRICS[-1])
  np.testing.assert_allclose(hd.mean, 10 * d.mean() / 100)
  assert (hd.wins, hd.losses) == (2, 3)
  text = tables.paired_text(a, b)
  assert text.startswith("A − B, DSC: +6.7 (95 % CI ") and "per seed +3.3 / +10.0" in text
  assert text.endswith("A better in 3 of 6 case-seed pairs, worse in 2")
  assert tables.paired_difference(a, tables.Column("c", "C", [])) is None
  sums = tables.paired_text(a._replace(title="L_ce + L_ss"), b)
  assert sums.startswith("(L_ce + L_ss) − B, DSC") and "(L_ce + L_ss) better in" in sums


# ----------------------------------------------------------------------------- plan


def test_plan_runs_the_full_sgscn_once_and_the_ablation_weights():
  methods = comparison.parse_methods("sgscn,iic,kmeans:3,kmeans:6")
  assert [str(m) for m in methods] == ["sgscn", "iic", "kmeans:3", "kmeans:6"]
  for bad in ("sgscn:3", "nope", "kmeans:3,kmeans:3"):
    with pytest.raises(ValueError):
      comparison.parse_methods(bad)
  plan = comparison.plan(methods, True, comparison.default_configs())
  # the slugs name the run folders: today's, so that existing folders resume
  assert [r.slug for r in plan.table] == ["sgscn", "iic_k3", "kmeans_k3", "kmeans_k6"]
  assert [r.title for r in plan.table] == ["SGSCN", "IIC", "k-means k=3", "k-means k=6"]
  assert [r.method.name for r in plan.table] == ["sgscn", "iic", "kmeans", "kmeans"]
  assert [r.k for r in plan.table] == [None, 3, 3, 6]
  vote, = comparison.plan(comparison.parse_methods("vote:kmeans:5+otsu_blue"), False,
                          comparison.default_configs()).table
  assert vote.slug == "vote_kmeans_k5+otsu_blue" == vote.config.slug
  assert vote.method.kind == "vote" and vote.title == vote.config.title
  assert [r.slug for r in plan.ablation] == ["sgscn_ce", "sgscn_ce_ss", "sgscn"]
  assert [r.slug for r in plan.runs] == ["sgscn", "iic_k3", "kmeans_k3", "kmeans_k6",
                                         "sgscn_ce", "sgscn_ce_ss"]
  weights = [dict(r.config.loss_weights) for r in plan.ablation]
  assert [(w["sparse_spatial"], w["context_consistency"]) for w in weights] == [
      (0.0, 0.0), (5.0, 0.0), (5.0, 1.0)]
  assert plan.ablation[2].config == Config() == plan.table[0].config
  assert [r.title for r in plan.ablation] == ["L_ce", "L_ce + 5 L_ss", "L_ce + 5 L_ss + L_cc"]
  assert plan.table[3].config == KMeansConfig(k=6)
  assert comparison.plan(methods[1:], False, comparison.default_configs()).ablation == []


def test_s3net_ablation_is_the_posters_four_variants_and_their_one_loss_pairs():
  configs = comparison.default_configs()
  plan = comparison.plan(comparison.parse_methods("s3net,sgscn"), True, configs,
                         ablation_of="s3net")
  assert [r.slug for r in plan.ablation] == ["s3net_ce", "s3net_ce_s", "s3net_ce_at", "s3net"]
  assert [r.title for r in plan.ablation] == ["3.5 L_ce", "3.5 L_ce + 4 L_S",
                                              "3.5 L_ce + 0.2 L_AT", "3.5 L_ce + 0.2 L_AT + 4 L_S"]
  assert plan.ablation[3].config == configs["s3net"] == plan.table[0].config
  assert [r.slug for r in plan.runs] == ["s3net", "sgscn", "s3net_ce", "s3net_ce_s",
                                         "s3net_ce_at"]
  columns = [r.slug for r in plan.ablation]
  pairs = comparison.ablation_pairs(plan.ablation, columns)
  assert pairs == [("s3net_ce_s", "s3net_ce"), ("s3net_ce_at", "s3net_ce"),
                   ("s3net", "s3net_ce_s"), ("s3net", "s3net_ce_at")]
  sgscn = comparison.plan([], True, configs).ablation
  assert comparison.ablation_pairs(sgscn, [r.slug for r in sgscn]) == [
      ("sgscn_ce_ss", "sgscn_ce"), ("sgscn", "sgscn_ce_ss")]
  with pytest.raises(ValueError, match="no loss ablation"):
    comparison.plan([], True, configs, ablation_of="kmeans")


def test_pick_cases_spreads_over_the_ranking():
  rows = [{"case_id": f"c{i}", "largest_overlap.dice": d}
          for i, d in enumerate([0.5, 0.9, math.nan, 0.7, 0.1])]
  assert comparison.pick_cases(rows, 3) == ["c1", "c0", "c2"]
  assert comparison.pick_cases(rows, 10) == ["c1", "c3", "c0", "c4", "c2"]
  assert comparison.pick_cases([], 2) == []


# ----------------------------------------------------------------------------- charts


def test_bar_chart_and_case_grid_sizes_and_pixels():
  img = charts.bar_chart(["DSC", "J"], [("a", [50.0, 40.0], [5.0, math.nan]),
                                        ("b", [math.nan, 130.0], [1.0, 2.0])],
                         title="t", size=(300, 200))
  assert img.shape == (200, 300, 3) and img.dtype == np.uint8
  assert np.any(np.all(img == charts.SERIES_COLOURS[0], axis=-1))   # bars drawn
  assert np.any(np.all(img == charts.SERIES_COLOURS[1], axis=-1))
  assert [charts.nice_limit(v) for v in (0.5, 83.0, 100.0, 132.0, 260.0)] == [
      1.0, 100.0, 100.0, 200.0, 500.0]
  image = np.full((6, 8, 3), 0.5, np.float32)
  pred = np.zeros((6, 8), bool)
  pred[1:3, 1:3] = True
  panel = charts.segment_panel(image, pred, None)
  expected = np.round(0.55 * 128 + 0.45 * np.array(charts.SEGMENT_COLOUR)).astype(np.uint8)
  np.testing.assert_array_equal(panel[1, 1], expected)
  np.testing.assert_array_equal(panel[5, 7], [128, 128, 128])
  big = charts.segment_panel(image, pred, pred, height=12)
  assert big.shape == (12, 16, 3)
  np.testing.assert_array_equal(big[2, 2], report_gt_colour())      # gt outline on top
  grid = charts.case_grid(["a", "b", "c"], [("r1", [panel] * 3, ["x", "", "y"]),
                                            ("r2", [panel] * 3, ["", "", ""])],
                          panel_height=30, footer="f")
  line, gap, w = charts.LINE, 4, round(30 * 8 / 6)
  assert grid.shape == (gap + line + 2 * (line + 30 + line + gap) + line, gap + 3 * (w + gap), 3)
  with pytest.raises(ValueError):
    charts.case_grid(["a"], [("r", [panel] * 2, ["", ""])])


def report_gt_colour():
  from sgscn_jax.reporting import overlays
  return np.array(overlays.GT_COLOUR, np.uint8)


def test_copy_stamped_heads_tables_with_command_and_commit(tmp_path):
  runs = tmp_path / "runs"
  runs.mkdir()
  (runs / "table1.md").write_bytes(b"### Table 1\n\n| a |\n")
  (runs / "table1.csv").write_bytes(b"metric,sgscn\r\ndice,70.4\r\n")   # older CSVs: CRLF
  (runs / "cases.png").write_bytes(b"not a table")
  written = {p.name: str(p) for p in runs.iterdir()}
  copied = tables.copy_stamped(written, str(tmp_path / "docs" / "ph2"), "python -m x --a 1",
                               "abc1234")
  assert sorted(Path(p).name for p in copied) == ["table1.csv", "table1.md"]
  docs = tmp_path / "docs" / "ph2"
  assert (docs / "table1.md").read_bytes() == (
      b"<!-- made by: python -m x --a 1 at commit abc1234 -->\n### Table 1\n\n| a |\n")
  assert (docs / "table1.csv").read_bytes() == (
      b"# made by: python -m x --a 1 at commit abc1234\r\nmetric,sgscn\r\ndice,70.4\r\n")
  assert not (docs / "cases.png").exists()
  with pytest.raises(ValueError):
    tables.stamp_line("cases.png", "x", "abc1234")
  assert re.fullmatch(r"[0-9a-f]{7,}(-dirty)?|unknown", tables.source_commit())


# ----------------------------------------------------------------------------- end to end


def _script(*args):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, "-m", "experiments.reproduce_tables", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


def _csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_script_quick_mode_end_to_end(tmp_path):
  write_lesion_folder(tmp_path / "data")
  out = tmp_path / "tables"
  data = ["--dataset=folder", f"--images={tmp_path / 'data' / 'images'}",
          f"--masks={tmp_path / 'data' / 'masks'}", f"--out_dir={out}", "--size=native"]
  # One method of each kind (the network, a deep clustering baseline, a clustering baseline,
  # the three host methods): every other column is the same code with another config.
  slugs = ["sgscn", "deepcluster_k3", "kmeans_k2", "otsu", "otsu_blue", "chan_vese"]
  proc = _script(*data, "--quick", "--seeds=0,1", "--batch_size=2",
                 "--methods=sgscn,deepcluster,kmeans:2,otsu,otsu_blue,chan_vese")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "### Table 1" in proc.stdout and "### Ablation" in proc.stdout
  for name in ("table1.md", "table1.csv", "table1_central.md", "table1_central.csv",
               "table1_paper_fill.md", "table1_object.md", "table1_object.csv",
               "ablation_object.md", "protocols.md", "protocols_ablation.md",
               "ablation.md", "ablation.csv", "ablation.png", "cases.png", "run_log.csv",
               "run_log.json"):
    assert (out / name).is_file(), name
  summaries = {s: [json.loads((out / s / f"seed{k}" / "summary.json").read_text())
                   for k in (0, 1)] for s in slugs + ["sgscn_ce", "sgscn_ce_ss"]}
  table = _csv(out / "table1.csv")
  assert [r["metric"] for r in table] == [m.key for m in tables.METRICS] + [
      "seconds_per_image", "total_seconds", "images"]            # no paper rows: not PH2
  assert list(table[0])[3::4] == slugs
  for row, metric in zip(table, tables.METRICS):
    for slug in slugs:
      stats = [s["metrics"][f"largest_overlap.{metric.key}"] for s in summaries[slug]]
      scale = 100.0 if metric.unit == "%" else 1.0
      means = [scale * float(s["mean"]) for s in stats]
      np.testing.assert_allclose(float(row[slug]), np.mean(means), rtol=1e-12)
      np.testing.assert_allclose(float(row[f"{slug}.std_seeds"]), np.std(means, ddof=1),
                                 rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(float(row[f"{slug}.std_images"]),
                                 np.mean([scale * float(s["std"]) for s in stats]), rtol=1e-9)
      if metric.key in ("dice", "jaccard", "hammoude", "precision", "recall"):
        assert 0.0 <= float(row[slug]) <= 100.0
  assert all(float(v) == 3 for k, v in table[-1].items() if k in slugs)   # images
  ablation = _csv(out / "ablation.csv")
  assert list(ablation[0])[3::4] == ["sgscn_ce", "sgscn_ce_ss", "sgscn"]
  assert float(ablation[0]["sgscn"]) == float(table[0]["sgscn"])            # one run, two tables
  central = _csv(out / "table1_central.csv")
  np.testing.assert_allclose(float(central[0]["deepcluster_k3"]), np.mean(
      [100 * float(s["metrics"]["central.dice"]["mean"]) for s in summaries["deepcluster_k3"]]))
  weights = [dict(s[0]["config"]["loss_weights"]) for s in
             (summaries["sgscn_ce"], summaries["sgscn_ce_ss"], summaries["sgscn"])]
  assert [(w["sparse_spatial"], w["context_consistency"]) for w in weights] == [
      (0.0, 0.0), (5.0, 0.0), (5.0, 1.0)]
  assert iio.imread(out / "ablation.png").shape == (420, 720, 3)
  w = round(128 * 32 / 24)
  line = charts.LINE
  assert iio.imread(out / "cases.png").shape == (4 + line + 3 * (line + 128 + line + 4) + line,
                                                 4 + 8 * (w + 4), 3)
  log = _csv(out / "run_log.csv")
  assert len(log) == 8 * 2 and all(r["resumed"] == "0" and r["finished"] == "3" for r in log)
  # the three protocols (and central) side by side; every run wrote its objects
  protocols_md = (out / "protocols.md").read_text()
  assert "| method | paper | paper+fill | object | central |" in protocols_md
  for title in ("Otsu", "Otsu (blue)", "Chan-Vese", "k-means k=2"):
    assert f"| {title} | " in protocols_md
  assert "Paired differences against Otsu (blue)" in protocols_md
  assert "- object: SGSCN − Otsu (blue), DSC: " in protocols_md
  object_table = _csv(out / "table1_object.csv")
  np.testing.assert_allclose(float(object_table[0]["otsu"]), np.mean(
      [100 * float(s["metrics"]["object.dice"]["mean"]) for s in summaries["otsu"]]))
  assert len(list((out / "sgscn" / "seed0" / "objects").glob("*.png"))) == 3
  md = (out / "table1.md").read_text()
  assert "QUICK MODE" in md and "± " in md and "Wall time of this invocation" in md
  for other in ("DeepCluster", "k-means k=2", "Otsu"):   # paired lines, 2 seeds
    assert f"- SGSCN − {other}, DSC: " in md
  assert "better in" in md and "of 6 case-seed pairs" in md and "per seed " in md
  assert "- (L_ce + 5 L_ss) − L_ce, DSC: " in (out / "ablation.md").read_text()

  # a rerun resumes everything (and copies its tables, stamped, into --tables_dir); other
  # settings in the same folder are refused
  docs = tmp_path / "docs_tables"
  proc = _script(*data, "--quick", "--seeds=0,1", "--batch_size=2", "--methods=kmeans:2",
                 "--noablation", f"--tables_dir={docs}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [r["resumed"] for r in _csv(out / "run_log.csv")] == ["3", "3"]
  names = {p.name for p in docs.iterdir()}   # the tables of this invocation, no figures
  assert {"table1.md", "table1.csv", "table1_object.md", "protocols.md", "run_log.csv"} <= names
  assert all(n.endswith((".md", ".csv")) for n in names) and "ablation.md" not in names
  first, rest = (docs / "table1.md").read_text().split("\n", 1)
  assert first.startswith("<!-- made by: python -m experiments.reproduce_tables --dataset=folder")
  assert "--methods=kmeans:2 --noablation --tables_dir=" in first
  assert re.search(r" at commit ([0-9a-f]{7,}(-dirty)?|unknown) -->$", first)
  assert rest == (out / "table1.md").read_text()
  first, rest = (docs / "table1.csv").read_text().split("\n", 1)
  assert first.startswith("# made by: python -m experiments.reproduce_tables ")
  assert rest == (out / "table1.csv").read_text()
  proc = _script(*data, "--seeds=0", "--methods=kmeans:2", "--noablation")
  assert proc.returncode == 2 and "holds results made with other settings" in proc.stderr
  proc = _script(*data, "--seed=1")
  assert proc.returncode != 0 and "--seeds" in proc.stderr


def test_run_options_take_each_methods_standardise_default(tmp_path):
  """reproduce_tables on lung CT: S3-Net's runs standardise, the others keep the flag's."""
  plan = comparison.plan(comparison.parse_methods("s3net,sgscn"), False,
                         comparison.default_configs())
  options = image_runs.RunOptions(out_dir=str(tmp_path), standardise=False)
  prior = functools.partial(datasets.standardise_prior, "lung_ct")
  got = {run.slug: comparison.run_options(options, tmp_path, run, 2, prior) for run in plan.table}
  assert got["s3net"].standardise and not got["sgscn"].standardise
  assert got["s3net"].out_dir == str(tmp_path / "s3net" / "seed2") and got["s3net"].seed == 2
  assert not comparison.run_options(options, tmp_path, plan.table[0], 0).standardise
