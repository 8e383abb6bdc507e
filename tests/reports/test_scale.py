"""The report at scale and at the edges: every run folder yields a report (grid-only, one regime, all failed, one
job), figures that have nothing to show say why, raster heatmaps, binned per-class scatters, one colour per
regime, numeric grid axes, sampled-class captions, seeds pooled, the backbone's share apart from the classifier,
and the data-wait share (made-up results, no training)."""
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.image import AxesImage

from bench.registry import REGIMES
from reports import figures
from reports.build import build_report, summary_table
from reports.figures import (BINNED_ABOVE, PALETTE, Skip, class_mean_similarity, feature_gap_vs_frequency,
                             grid_heatmap, numeric_key, per_class_vs_frequency, regime_colour, stats_by_row)
from reports.load import load_run
from reports.markdown import run_markdown
from reports.verdict import verdict
from tests.reports.test_rows import plan, result, write_jobs

matplotlib.use("Agg")


def big(regime: str, seed: int = 0, classes: int = 500, few: float = 10.0, pct: float = 0.5,
        run_dir: Path | None = None, **extra) -> dict:
    """`result` at `classes` classes (a long tail from 1,000 to 2 images), with a statistics file in `run_dir`
    (old layout: class means inside it) when one is given."""
    r = result(regime, seed, few=few, pct=pct, **extra)
    rng = np.random.default_rng(seed + 100 * len(regime))
    counts = np.round(np.geomspace(1000, 2, classes)).astype(int)
    r["dataset"].update(num_classes=classes, classnames=[f"c{i}" for i in range(classes)],
                        train_class_counts=counts.tolist())
    for split in ("test", "train"):
        r["metrics"][split]["per_class_acc"] = rng.uniform(0, 1, classes).tolist()
    if run_dir is not None:
        (run_dir / "stats").mkdir(parents=True, exist_ok=True)
        file = f"stats/{r['job_id']}.npz"
        np.savez(run_dir / file, train_count=counts, test_count=np.full(classes, 3),
                 gap_pairwise=rng.normal(0.01 * seed, 0.05, classes),
                 train_hist=rng.integers(0, 5, (classes, 40)), test_hist=rng.integers(0, 5, (classes, 40)),
                 test_means=rng.standard_normal((classes, 16)).astype(np.float16))
        r["statistics"]["file"] = file
    return r


def page_of(run_dir: Path) -> str:
    html_path, pdf_path = build_report(run_dir)
    assert pdf_path.stat().st_size > 0
    page = html_path.read_text()
    assert "could not be made" not in page, re.findall(r"<li>([^<]*could not be made[^<]*)</li>", page)
    return page


def grid_folder(run_dir: Path, values=("1", "16", "4", "64"), regime="lora") -> list[dict]:
    """A grid-only run: jobs that are points of a grid over `rank`, none of them a main job."""
    jobs = [result(regime, 0, few=10.0 + i, pct=0.5, rank=v) for i, v in enumerate(values)]
    write_jobs(run_dir, jobs)
    plan(run_dir, jobs, main=False, grids=("ranks",), lightweight=True)
    (run_dir / "grids").mkdir(exist_ok=True)
    (run_dir / "grids" / "ranks.json").write_text(json.dumps({
        "name": "ranks", "metric": "few", "regime": regime, "axes": {"rank": list(values)},
        "jobs": [{"point": {"regime": regime, "rank": v}, "dataset": "synthetic_lt", "job_id": j["job_id"],
                  "seed": 0} for v, j in zip(values, jobs)]}))
    return jobs


def test_a_grid_only_run_writes_a_report_with_its_grid_and_says_what_is_not_drawn(tmp_path):
    grid_folder(tmp_path)
    page = page_of(tmp_path)
    assert "Ablation grid: ranks" in page and page.count("<figure>") == 1
    assert "No finished job of a regime&#x27;s own recipe, so the accuracy and cost figures are not drawn" in page


def test_grid_axes_sort_numerically(tmp_path):
    grid_folder(tmp_path)
    run = load_run(tmp_path)
    fig, caption = grid_heatmap(run, run.grids[0])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["1", "4", "16", "64"] and "numeric order" in caption
    assert sorted(["64", "b", "4", "a", "16.5"], key=numeric_key) == ["4", "16.5", "64", "a", "b"]


@pytest.mark.parametrize("case", ["one regime", "one job", "all failed", "nothing measured"])
def test_degenerate_run_folders_still_write_a_report(tmp_path, case):
    if case == "one regime":
        jobs = [result("lora", s, few=10.0 + s) for s in range(3)]
    elif case == "one job":
        jobs = [result("full", 0)]
    elif case == "all failed":
        jobs = [result(r, 0, status="failed") for r in ("full", "lora")]
    else:  # no accuracy and no trainable share: log scales with no positive value, all-NaN tables
        jobs = [result(r, 0) for r in ("full", "lora")]
        for j in jobs:
            j["params"] = {}
            for split in ("test", "train"):
                j["metrics"][split] = {k: None for k in ("top1", "many", "medium", "few")}
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    page = page_of(tmp_path)
    if case == "all failed":
        assert "full/seed0 failed" in page and "not drawn" in page
    if case == "nothing measured":
        assert "No finished job recorded both its trainable share and its accuracy." in page


def test_a_figure_with_an_all_nan_table_is_skipped_not_raised(tmp_path):
    jobs = [result(r, 0) for r in ("full", "lora")]
    for j in jobs:
        j["params"] = {"trainable_pct": None}
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    made = figures.accuracy_vs_parameters(load_run(tmp_path))
    assert isinstance(made, Skip) and "trainable share" in made


def test_palette_gives_every_registered_regime_its_own_colour_in_every_figure(tmp_path):
    names = REGIMES.names()
    assert len(names) >= 13 and len(PALETTE) >= len(names)
    assert len({regime_colour(n) for n in names}) == len(names)
    assert regime_colour("lora") == regime_colour("lora") and regime_colour("my_own") in PALETTE
    jobs = [big(r, 0, run_dir=tmp_path) for r in ("full", "lora", "adapter", "ssf")]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    run = load_run(tmp_path)
    lines = {line.get_label().split(" ")[0]: matplotlib.colors.to_hex(line.get_color())
             for line in per_class_vs_frequency(run)[0].axes[0].get_lines()}
    gaps = {line.get_label().split(" ")[0]: matplotlib.colors.to_hex(line.get_color())
            for line in feature_gap_vs_frequency(run, "synthetic_lt")[0].axes[0].get_lines()
            if not line.get_label().startswith("_")}
    assert lines == gaps == {r: regime_colour(r) for r in ("full", "lora", "adapter", "ssf")}


def test_many_classes_binned_scatter_and_raster_sampled_heatmap(tmp_path):
    jobs = [big(r, s, run_dir=tmp_path) for r in ("zero_shot", "full") for s in (0, 1)]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    run = load_run(tmp_path)
    fig, caption = feature_gap_vs_frequency(run, "synthetic_lt")
    points = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert 500 > BINNED_ABOVE and all(len(c.get_offsets()) < 50 for c in points)
    assert "500 classes, so per log-spaced frequency bin the median" in caption and "interquartile range" in caption
    assert all("(n=2)" in label for label in fig.axes[0].get_legend_handles_labels()[1])
    fig, caption = class_mean_similarity(run, "synthetic_lt")
    assert "200 of 500 classes, sampled evenly along the training-frequency ranking" in caption
    images = [a for ax in fig.axes for a in ax.get_children() if isinstance(a, AxesImage)]
    meshes = [a for ax in fig.axes for a in ax.get_children() if isinstance(a, QuadMesh)]  # the colour bar's
    assert len(images) == 2 and all(m.get_rasterized() for m in meshes)
    _, pdf = build_report(tmp_path)
    assert pdf.stat().st_size < 1_500_000  # raster cells: a 200×200 vector mesh alone is several MB


def test_few_classes_keep_one_point_per_class_and_all_classes_in_the_heatmap(tmp_path):
    jobs = [big(r, 0, classes=6, run_dir=tmp_path) for r in ("zero_shot", "full")]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    run = load_run(tmp_path)
    fig, caption = feature_gap_vs_frequency(run, "synthetic_lt")
    assert [len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection)] == [6, 6]
    assert "one point per class" in caption
    assert "all 6 classes" in class_mean_similarity(run, "synthetic_lt")[1]


def test_feature_statistics_are_pooled_over_seeds(tmp_path):
    jobs = [big("full", s, run_dir=tmp_path) for s in (0, 1, 2)]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    run = load_run(tmp_path)
    pooled = stats_by_row(run, "synthetic_lt")["full"]
    each = [np.load(tmp_path / j["statistics"]["file"]) for j in jobs]
    assert pooled["n_seeds"] == 3
    np.testing.assert_allclose(pooled["gap_pairwise"], np.mean([e["gap_pairwise"] for e in each], axis=0))
    np.testing.assert_array_equal(pooled["train_hist"], np.sum([e["train_hist"] for e in each], axis=0))
    assert "test_means" not in pooled  # the K×D means are read only for the heatmap


def split_params(r: dict, backbone_pct: float, classifier: int) -> dict:
    r["params"].update(backbone_trainable_pct=backbone_pct, classifier=classifier,
                       backbone_trainable=int(backbone_pct * 1000))
    return r


def test_verdict_and_tables_count_the_backbone_apart_from_the_classifier(tmp_path):
    full = [split_params(result("full", s, few=10.0, pct=100.0), 99.0, 5120) for s in (0, 1)]
    light = [split_params(result(r, s, few=15.0, pct=8.0), b, 5120) for r, b in (("lora", 0.2), ("ssf", 0.05))
             for s in (0, 1)]
    write_jobs(tmp_path, full + light)
    plan(tmp_path, full)
    plan(tmp_path, light, lightweight=True)
    run = load_run(tmp_path)
    main = run.main
    if "backbone_trainable_pct" not in main:  # before reports.load reads the new columns
        by_id = {j["job_id"]: j["params"] for j in full + light}
        main = main.assign(backbone_trainable_pct=main.job_id.map(lambda i: by_id[i]["backbone_trainable_pct"]),
                           classifier_params=main.job_id.map(lambda i: by_id[i]["classifier"]))
    text = " ".join(verdict(main, "synthetic_lt"))
    assert "they tune 0.05–0.2% of the backbone (papers: under 1%), plus the classifier's 5,120 parameters" in text
    if "backbone_trainable_pct" in run.main:
        table = summary_table(run).set_index("row")
        assert table.loc["lora", "backbone_tuned_pct"] == pytest.approx(0.2)
        assert table.loc["lora", "classifier_params"] == 5120
        assert "| 0.20 | 5,120 |" in run_markdown(run)
    page = build_report(tmp_path)[0].read_text()
    assert "% backbone tuned" in page and "classifier params" in page


def test_older_results_fall_back_to_the_trainable_share_and_say_so(tmp_path):
    full = [result("full", 0, pct=100.0)]
    light = [result("lora", 0, few=15.0, pct=7.3)]
    write_jobs(tmp_path, full + light)
    plan(tmp_path, full)
    plan(tmp_path, light, lightweight=True)
    run = load_run(tmp_path)
    main = run.main.drop(columns=["backbone_trainable_pct", "classifier_params"], errors="ignore")
    text = " ".join(verdict(main, "synthetic_lt"))
    assert "they train 7.3% of the backbone (papers: under 1%), the classifier counted in" in text
    assert summary_table(run).set_index("row").loc["lora", "backbone_tuned_pct"] == pytest.approx(7.3)


def test_data_wait_share_is_shown_when_recorded(tmp_path):
    jobs = [result(r, 0) for r in ("full", "lora")]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    page = page_of(tmp_path)
    assert "data wait %" not in page and "waiting for data" not in page.lower()
    for j, shares in zip(jobs, ([0.5, 0.7], [0.1, 0.1])):
        j["history"] = [{"epoch": e, "data_wait_share": s} for e, s in enumerate(shares)]
    write_jobs(tmp_path, jobs)
    run = load_run(tmp_path)
    assert summary_table(run).set_index("row")["data_wait_pct"].to_dict() == pytest.approx({"full": 60.0,
                                                                                            "lora": 10.0})
    fig, caption = figures.cost(run)
    assert len(fig.axes) == 5 and "Waiting for data" in caption
    page = page_of(tmp_path)
    assert "data wait %" in page


def test_frequency_bins_are_medians_and_quartiles_per_log_bin():
    counts = np.array([1, 1, 1, 100, 100, 100])
    values = np.array([0.0, 1.0, 2.0, 10.0, 20.0, 30.0])
    table = figures.frequency_bins(counts, values, bins=2)
    assert table["median"].tolist() == [1.0, 20.0] and table.classes.tolist() == [3, 3]
    assert figures.frequency_bins(counts, np.full(6, np.nan)).empty
