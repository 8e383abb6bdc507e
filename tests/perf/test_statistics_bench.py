import numpy as np

from bench.perf import statistics as perf
from bench.perf.statistics import SIZES, Size, format_rows, inputs, long_tail_counts, measure


def test_long_tail_counts_run_from_the_largest_to_the_smallest_class_and_sum_to_the_train_total():
    for size in SIZES.values():
        counts = long_tail_counts(size)
        assert counts.sum() == size.train and len(counts) == size.classes
        assert abs(counts[0] - size.most) <= 1 and counts[-1] == size.fewest and (np.diff(counts) <= 0).all()


def test_inputs_have_the_real_shapes_and_equal_test_counts():
    size = Size(train=50, test=12, classes=4, most=30, fewest=2)
    features, labels, frozen = inputs(size, dim=3)
    assert features["train"].shape == frozen["train"].shape == (50, 3) and features["test"].shape == (12, 3)
    assert np.bincount(labels["test"].numpy()).tolist() == [3, 3, 3, 3]
    assert np.bincount(labels["train"].numpy()).tolist() == long_tail_counts(size).tolist()


def test_measure_times_a_tiny_size_and_the_table_lists_it(monkeypatch):
    monkeypatch.setitem(SIZES, "tiny", Size(train=200, test=40, classes=5, most=80, fewest=3))
    calls = []
    monkeypatch.setattr(perf, "summarised_statistics", lambda *args: calls.append(args) or ({}, {}))
    row = measure("tiny", dim=8)
    assert calls and calls[0][0]["train"].shape == (200, 8) and calls[0][3]["test"].shape == (40, 8)
    assert sorted(calls[0][4]) == ["few", "many", "medium"] and sum(map(len, calls[0][4].values())) == 5
    assert {k: row[k] for k in ("size", "train", "test", "classes", "dim")} == {
        "size": "tiny", "train": 200, "test": 40, "classes": 5, "dim": 8}
    assert row["seconds"] >= 0 and row["peak_extra_mb"] >= 0
    lines = format_rows([row]).splitlines()
    assert lines[0].split() == ["size", "train", "test", "classes", "seconds", "peak", "extra", "MB"]
    assert lines[2].split()[:4] == ["tiny", "200", "40", "5"]


def test_measure_runs_the_real_statistics(monkeypatch):
    monkeypatch.setitem(SIZES, "tiny", Size(train=200, test=40, classes=5, most=80, fewest=3))
    row = measure("tiny", dim=8)
    assert row["seconds"] > 0
