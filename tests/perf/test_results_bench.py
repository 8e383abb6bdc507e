"""The run-folder benchmark at a tiny size: it writes finished jobs through the real store, recognises them all
as done on the rerun, loads them for the report and counts the bytes of every kind of file."""
import json

from bench.perf.results import THIS_TREE, format_results, main
from bench.results import RunStore


def test_tiny_benchmark_runs_and_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["--jobs", "3", "--classes", "1100", "--dim", "8", "--pairs", "1200", "--train-images", "9000",
                 "--out", str(out), "--json", str(tmp_path / "figures.json")]) == 0
    printed = capsys.readouterr().out
    assert "rerun peak MB" in printed and printed.splitlines()[2].startswith("new")
    figures = json.loads((tmp_path / "figures.json").read_text())["new"]
    assert figures["rerun"]["jobs"] == figures["load"]["jobs"] == 3
    assert figures["rerun"]["code"] == str(THIS_TREE)  # the checkout measured is this one
    assert figures["load"]["checked"] == [1100, [200, 8]]  # a job's per-class accuracies and class means read back
    disk = figures["disk"]
    assert disk["files"]["jobs"] == disk["files"]["arrays"] == disk["files"]["rows"] == 3
    assert disk["files"]["datasets"] == 1 and disk["files"]["means"] == 2  # zero_shot and linear_probe share one
    run = RunStore(out / "run-new")
    assert all(r.status == "ok" for r in run.rows()) and (out / "run-new" / "results.csv").is_file()
    assert len(run.results()[0].metrics["test"]["per_class_acc"]) == 1100


def test_scaled_figures_are_labelled():
    figure = {"size": {"jobs": 2}, "rerun": {"seconds": 1.0, "peak_mb": 300.0, "import_mb": 100.0},
              "load": {"seconds": 2.0, "peak_mb": 200.0, "import_mb": 100.0},
              "disk": {"jobs": 1e6, "arrays": 0, "stats": 2e6, "means": 0, "datasets": 0, "rows": 1e3, "total": 3e6}}
    text = format_results({"old": figure}, 4)
    assert "old (scaled from 2)" in text
    scaled = next(line for line in text.splitlines() if "scaled" in line).split()
    assert scaled[5:9] == ["2.0", "500", "4.0", "300"]  # time ×2, memory above the imports ×2
