"""Seeds done right: every mean over seeds shows its sd and n; regime differences carry a paired test and a
bootstrap interval (made-up results with known per-seed values)."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel

from bench.bootstrap import paired_interval
from reports.build import build_report, regime_differences, summary_table
from reports.load import load_run
from reports.markdown import run_markdown
from tests.reports.test_rows import plan, result, write_jobs

A, B = [10.0, 12.0, 14.0], [20.0, 21.0, 25.0]  # few-shot accuracy of seeds 0, 1, 2


def with_classes(r: dict, per_class: list[float]) -> dict:
    """`r` with its per-class test accuracies set (the helper's are all equal)."""
    r["metrics"]["test"]["per_class_acc"] = per_class
    return r


@pytest.fixture
def run_dir(tmp_path):
    """full (heavy) few = A, lora (light) few = B over seeds 0..2, and a one-seed ssf."""
    full = [with_classes(result("full", s, few=f, pct=100.0), [90, 80, 70, f, f - 4, f + 4]) for s, f in enumerate(A)]
    lora = [with_classes(result("lora", s, few=f, pct=0.2), [90, 80, 70, f + 2, f - 6, f + 4]) for s, f in enumerate(B)]
    ssf = [result("ssf", 0, few=15.0, pct=0.1)]
    write_jobs(tmp_path, full + lora + ssf)
    plan(tmp_path, full)
    plan(tmp_path, lora + ssf, lightweight=True)
    return tmp_path


def test_summary_shows_mean_sd_and_n_and_one_seed_has_no_spread(run_dir):
    table = summary_table(load_run(run_dir)).set_index("row")
    assert table.loc["full", "seeds"] == 3 and table.loc["lora", "seeds"] == 3 and table.loc["ssf", "seeds"] == 1
    assert table.loc["full", "few"] == pytest.approx(np.mean(A))
    assert table.loc["full", "few sd"] == pytest.approx(np.std(A, ddof=1))
    assert table.loc["lora", "few sd"] == pytest.approx(np.std(B, ddof=1))
    assert table.loc["lora", "overall sd"] == pytest.approx(np.std(np.add(B, 20), ddof=1))
    assert np.isnan(table.loc["ssf", "few sd"])  # one seed: no spread, never 0.0
    assert list(table.columns[:6]) == ["dataset", "seeds", "top1", "overall sd", "overall 95% CI", "many"]


def test_markdown_shows_mean_sd_and_n(run_dir):
    text = run_markdown(load_run(run_dir))
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    head = lines["regime"]
    few = head.index("few")
    assert lines["full"][1] == "3" and lines["full"][few] == f"{np.mean(A):.1f} ± {np.std(A, ddof=1):.1f}"
    assert lines["lora"][few] == f"{np.mean(B):.1f} ± {np.std(B, ddof=1):.1f}"
    assert lines["ssf"][1] == "1" and lines["ssf"][few] == "15.0"  # n = 1: the mean alone
    assert "sd over seeds" in text.splitlines()[0]


def test_differences_carry_scipys_paired_test_and_a_class_bootstrap(run_dir):
    run = load_run(run_dir)
    table = regime_differences(run, "synthetic_lt").set_index("regime")
    assert set(table.reference) == {"lora"}  # the best lightweight row on few-shot accuracy
    full = table.loc["full"]
    assert full["difference"] == pytest.approx(np.mean(A) - np.mean(B)) and full["paired seeds"] == 3
    assert full["paired t-test p"] == pytest.approx(ttest_rel(A, B).pvalue)
    low, high = map(float, full["difference 95% CI"].strip("[]").split(","))
    assert high < 0 and full["excludes 0"] == "yes"  # a clear gap
    ssf = table.loc["ssf"]
    assert ssf["seeds"] == 1 and ssf["paired seeds"] == 1 and pd.isna(ssf["paired t-test p"])
    assert np.isnan(ssf["few sd"])
    page = build_report(run_dir)[0].read_text()
    assert "Differences between regimes" in page and "against lora" in page and "ttest_rel" in page
    assert f"{ttest_rel(A, B).pvalue:.3g}" in page


def test_identical_rows_have_an_interval_that_includes_0(tmp_path):
    per_class = [90, 80, 70, 30, 10, 20]
    rows = [with_classes(result(regime, s, few=20.0, pct=pct), per_class)
            for regime, pct in (("full", 100.0), ("lora", 0.2)) for s in (0, 1)]
    write_jobs(tmp_path, rows)
    difference = regime_differences(load_run(tmp_path), "synthetic_lt").iloc[0]
    assert difference["difference 95% CI"] == "[0.00, 0.00]" and difference["excludes 0"] == "no"
    assert pd.isna(difference["paired t-test p"])  # no spread in the differences: no t


def test_paired_interval_keeps_the_pairing():
    hard = np.array([10.0, 50.0, 90.0, 30.0, 70.0])  # classes differ a lot, the rows by exactly 2 points
    assert paired_interval(hard + 2, hard) == [2.0, 2.0]
    low, high = paired_interval(hard, hard[::-1])
    assert low < 0 < high
    assert paired_interval([1.0, np.nan], [0.0, 0.0]) is None  # one class both measured
