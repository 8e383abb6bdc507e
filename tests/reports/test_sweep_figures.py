"""The "where heavy starts to hurt" figure and its table: from one short real run of a grid with a data-set axis
(2 ratios × 2 regimes on the tiny model: a bootstrap over the test images), and from made-up results (several seeds:
a bootstrap over seeds; a point without a few-shot class: said, not drawn)."""
import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.data.groups import ClassGroups
from bench.manifest import record_plan
from bench.results import RunStore
from reports.build import build_report
from reports.load import load_run
from reports.markdown import run_markdown
from reports.sweep_figures import NO_FEW, heavy_minus_light, sweep_table
from tests.reports.test_rows import HPARAMS, manifest_job, result, write_jobs

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q", "--no-report"]
AXIS = "synthetic_lt.imbalance_ratio"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """full and lora at imbalance ratios 2 and 10 of a small synthetic_lt, 1 epoch each."""
    root = tmp_path_factory.mktemp("sweep")
    grid = root / "sweep.yaml"
    grid.write_text(f"name: sweep\nmetric: few\naxes:\n  regime: [full, lora]\n  {AXIS}: [2, 10]\n")
    run_dir = root / "run"
    assert main(["--datasets", "synthetic_lt", "--grid", str(grid), "--epochs", "1", "--no-train-eval", "--set",
                 "synthetic_lt.num_classes=6", "synthetic_lt.max_per_class=20",
                 "synthetic_lt.test_per_class=4", "--out", str(run_dir), *TINY]) == 0
    return run_dir


def test_each_point_runs_on_its_own_split_and_the_record_names_it(swept):
    jobs = [json.loads(p.read_text()) for p in (swept / "jobs").glob("*.json")]
    ratios = {j["job_id"]: j["config"]["dataset_config"]["imbalance_ratio"] for j in jobs}
    assert sorted(ratios.values()) == [2.0, 2.0, 10.0, 10.0]
    fingerprints = {ratio: {j["config"]["data_fingerprint"] for j in jobs if ratios[j["job_id"]] == ratio}
                    for ratio in (2.0, 10.0)}
    assert all(len(f) == 1 and "" not in f for f in fingerprints.values())  # checked before training, per point
    assert fingerprints[2.0] != fingerprints[10.0]
    record = json.loads((swept / "grids" / "sweep.json").read_text())
    assert {float(m["point"][AXIS]) for m in record["jobs"]} == {2.0, 10.0}
    assert all(float(m["point"][AXIS]) == ratios[m["job_id"]] for m in record["jobs"])


def test_the_figure_shows_heavy_minus_light_with_a_paired_image_interval(swept):
    run = load_run(swept)
    table = sweep_table(run, run.grids[0]).set_index("value")
    assert list(table.index) == ["2", "10"] and set(table.heavy) == {"full"} and set(table.light) == {"lora"}
    for value, line in table.iterrows():
        ids = {r.regime: r.job_id for r in run.ok.itertuples()
               if run.result(r.job_id).config["dataset_config"]["imbalance_ratio"] == float(value)}
        full, lora = (run.ok.set_index("job_id").few[ids[r]] for r in ("full", "lora"))
        assert line["heavy − light"] == pytest.approx(full - lora) and line["interval over"] == "test images (1 seed)"
        saved = [RunStore(swept).read_predictions(ids[r], ("test", "test_label")) for r in ("full", "lora")]
        counts = run.result(ids["full"]).dataset["train_class_counts"]
        labels = saved[0]["test_label"]
        few_classes = ClassGroups.from_counts(counts).few
        per_class = [np.mean([100.0 * (s["test"][labels == c] == c).mean() for c in few_classes]) for s in saved]
        assert per_class[0] - per_class[1] == pytest.approx(line["heavy − light"])  # the saved labels are the split's
        low, high = line["interval"]
        assert low <= line["heavy − light"] <= high and line["tail images"] == min(counts)
    fig, caption = heavy_minus_light(run, run.grids[0])
    assert "paired percentile bootstrap over the test images" in caption
    assert [line.get_label() for line in fig.axes[0].containers] == ["full − lora"]
    assert any(np.allclose(line.get_ydata(), 0) for line in fig.axes[0].get_lines())  # the zero line
    page = build_report(swept)[0].read_text()
    assert "sweep: few-shot accuracy (%), heavy − light" in page and "test images (1 seed)" in page
    assert "| full | lora | 1 |" in run_markdown(load_run(swept))


def _made_up(run_dir, seeds=(0, 1, 2)):
    """full and lora on synthetic_lt at ratios 1 (every class has 20 images: no few-shot class) and 10, over
    `seeds`; light lora tunes 4,608 backbone parameters, full 795,648."""
    jobs, members = [], []
    for ratio in (1, 10):
        for regime in ("full", "lora"):
            for seed in seeds:
                few = None if ratio == 1 else 10.0 + seed + (5.0 if regime == "lora" else 0.0)
                r = result(regime, seed, few=few or 0.0)
                r["config"]["dataset_config"]["imbalance_ratio"] = ratio
                r["job_id"] = f"{regime[:4]}{ratio:02d}{seed:02d}".ljust(16, "0")
                r["metrics"]["test"]["few"] = few
                r["params"]["backbone_trainable"] = 4_608 if regime == "lora" else 795_648
                r["dataset"]["train_class_counts"] = [20] * 6 if ratio == 1 else [20, 12, 7, 4, 3, 2]
                jobs.append(r)
                members.append({"point": {"regime": regime, AXIS: str(ratio)}, "dataset": "synthetic_lt",
                                "job_id": r["job_id"], "seed": seed})
    write_jobs(run_dir, jobs)
    record_plan(run_dir, [manifest_job(r, main=False, grids=("sweep",), lightweight=r["config"]["regime"] == "lora")
                          for r in jobs], protocol="reference", hparam_source=HPARAMS, command=["test"])
    (run_dir / "grids").mkdir()
    (run_dir / "grids" / "sweep.json").write_text(json.dumps({"name": "sweep", "metric": "few", "axes": {
        "regime": ["full", "lora"], AXIS: [1, 10]}, "jobs": members}))


def test_several_seeds_give_a_seed_interval_and_a_point_without_few_shot_classes_says_so(tmp_path):
    _made_up(tmp_path)
    run = load_run(tmp_path)
    table = sweep_table(run, run.grids[0]).set_index("value")
    assert pd.isna(table.loc["1", "heavy − light"]) and NO_FEW in table.loc["1", "interval over"]
    assert "the tail has 20" in table.loc["1", "interval over"]
    line = table.loc["10"]
    assert line["heavy − light"] == pytest.approx(-5.0) and line["seeds"] == 3  # full 10+s, lora 15+s
    assert line["interval over"] == "seeds (3, paired)" and line["interval"] == pytest.approx([-5.0, -5.0])
    fig, caption = heavy_minus_light(run, run.grids[0])
    assert "over the seeds both regimes ran" in caption and "left out: 1" in caption


def test_a_sweep_without_a_heavy_and_a_light_regime_says_why(tmp_path):
    _made_up(tmp_path, seeds=(0,))
    run = load_run(tmp_path)
    grid = {**run.grids[0], "jobs": [m for m in run.grids[0]["jobs"] if m["point"]["regime"] == "lora"]}
    assert "no heavy and lightweight regime both finished" in heavy_minus_light(run, grid)
