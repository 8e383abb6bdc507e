import json

import pandas as pd

from bench.io import write_atomic
from bench.job_result import JobFailure, JobResult, outcome_from_dict
from bench.results import RunStore


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "a" / "x.json"
    write_atomic(target, "{}")
    write_atomic(target, '{"v": 2}')
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def _result(job_id, status="ok", few=None, dataset="d", regime="r"):
    config = {"dataset": dataset, "regime": regime, "seed": 0}
    if status != "ok":
        return JobFailure(job_id, job_id, config, "it broke", status)
    return JobResult(job_id, job_id, config, metrics={"test": {"top1": 50.0, "many": 60.0, "medium": 40.0, "few": few}})


def test_store_finished_and_failed_jobs(tmp_path):
    store = RunStore(tmp_path)
    store.save(_result("aaa"))
    store.save(_result("bbb", status="failed"))
    store.job_path("ccc").write_text("{truncated")  # a half-written file is not a result
    assert store.is_finished("aaa")
    assert not store.is_finished("bbb") and not store.is_finished("ccc") and not store.is_finished("ddd")
    assert {r.job_id: r.status for r in store.results()} == {"aaa": "ok", "bbb": "failed"}


def test_table_keeps_empty_groups_empty(tmp_path):
    store = RunStore(tmp_path)
    store.save(_result("aaa", few=None))
    store.save(_result("bbb", few=12.5, regime="s"))
    frame = pd.read_csv(store.write_table())
    assert list(frame["regime"]) == ["r", "s"]
    assert pd.isna(frame.loc[0, "few"]) and frame.loc[1, "few"] == 12.5
    assert ",," in (tmp_path / "results.csv").read_text()  # an empty cell, not 0 or "nan"
    assert _result("x").to_row()["top1"] == 50.0 and _result("y", "failed").to_row()["top1"] is None


def test_outcomes_round_trip_through_their_json_and_tolerate_other_versions():
    result = JobResult("a", "d/r/seed0", {"regime": "r"}, resolved={"rank": 4}, epochs=2)
    assert outcome_from_dict(json.loads(json.dumps(result.to_dict()))) == result
    failure = JobFailure("b", "d/r/seed0", {}, "boom", "interrupted", traceback="tb")
    assert outcome_from_dict(failure.to_dict()) == failure
    old = outcome_from_dict({"status": "ok", "job_id": "c", "config": {}, "protocol": "reference", "future": 1})
    assert isinstance(old, JobResult) and old.label == "c" and old.resolved == {}  # unknown keys dropped
    assert outcome_from_dict({"status": "failed", "job_id": "d"}).error == "unknown error"
    assert list(result.to_row()) == list(failure.to_row())  # one column order for results.csv


# lean results: compact JSON, per-class arrays and the data-set summary in files of their own, rows beside


import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bench.results as results_module  # noqa: E402
from bench.io import json_safe  # noqa: E402
from bench.results import ResultFileError, read_statistics  # noqa: E402

K = 1500  # classes: more than INLINE_LIMIT, so every per-class list leaves the JSON


def _large(job_id, seed=0, regime="r", classes=K):
    """A finished result of iNaturalist's shape, small: per-class accuracies (an absent class is None),
    confusion triples, a data-set summary with class names."""
    rng = np.random.default_rng(seed)
    per_class = [None if c % 97 == 0 else float(100.0 * rng.integers(0, 4) / 3) for c in range(classes)]
    pairs = sorted({(int(t), int(p)) for t, p in rng.integers(0, classes, size=(3 * classes, 2))})
    confusion = [[t, p, int(rng.integers(1, 9))] for t, p in pairs]
    metrics = {split: {"top1": 61.25 + seed, "many": 70.0, "medium": 60.0, "few": None if split == "train" else 40.5,
                       "ci95": {"top1": [60.0, 62.5], "few": [39.0, 42.0]}, "worst_class_acc": 0.0,
                       "per_class_acc": per_class, "confusion": confusion, "num_samples": 3 * classes}
               for split in ("test", "train")}
    dataset = {"name": "inat", "num_classes": classes, "train_size": 10 * classes, "test_size": 3 * classes,
               "val_size": None, "max_count": 1000, "min_count": 2, "groups": {"many": 1, "medium": 2, "few": 3},
               "fingerprint": "f" * 64, "train_class_counts": [int(c) for c in rng.integers(2, 1000, classes)],
               "classnames": [f"Genus species {c}" for c in range(classes)]}
    params = {"trainable": 2000, "backbone": 100000, "trainable_pct": 2.0, "backbone_trainable": 500,
              "classifier": 1500, "backbone_trainable_pct": 0.5, "trainable_tensors": ["head.weight"]}
    return JobResult(job_id, f"inat/{regime}/seed{seed}", {"dataset": "inat", "regime": regime, "seed": seed},
                     dataset=dataset, split_fingerprint="s" * 64, metrics=metrics, params=params, epochs=2,
                     history=[{"epoch": 0, "loss": 1.5}], timings={"train_s": 1.0, "total_s": 2.0},
                     statistics={"groups": {"few": {"gap_pairwise": 0.01}}, "file": f"stats/{job_id}.npz"})


def _old_save(store, outcome):
    """What RunStore.save wrote before: everything inline, indented."""
    write_atomic(store.job_path(outcome.job_id), json.dumps(json_safe(outcome.to_dict()), indent=1, allow_nan=False))


def test_large_arrays_leave_the_compact_json_and_come_back_exactly(tmp_path):
    store = RunStore(tmp_path)
    result = _large("aaa")
    store.save(result)
    text = store.job_path("aaa").read_text()
    assert "\n" not in text and ", " not in text and '": ' not in text  # compact separators, no indentation
    saved = json.loads(text)
    assert all("per_class_acc" not in m and "confusion" not in m for m in saved["metrics"].values())
    assert "classnames" not in text and "Genus" not in text
    assert saved["arrays"]["file"] == "arrays/aaa.npz" and (tmp_path / "arrays" / "aaa.npz").is_file()
    assert saved["dataset"]["num_classes"] == K and saved["dataset"]["file"].startswith("datasets/")
    assert store.load("aaa") == result  # every number, None and list as it was
    assert outcome_from_dict(saved, tmp_path) == result
    lean = store.load("aaa", full=False)
    assert "per_class_acc" not in lean.metrics["test"] and lean.metrics["test"]["top1"] == 61.25
    assert lean.to_row() == result.to_row()
    assert store.results() == [result]
    assert len(text) < 3000  # against ~100 KB with the arrays inline


def test_small_results_keep_their_lists_inline(tmp_path):
    store = RunStore(tmp_path)
    small = _large("aaa", classes=50)
    store.save(small)
    saved = json.loads(store.job_path("aaa").read_text())
    assert len(saved["metrics"]["test"]["per_class_acc"]) == 50 and saved.get("arrays") is None
    assert "classnames" in saved["dataset"] and not (tmp_path / "arrays").exists()
    assert store.load("aaa") == small


def test_the_data_set_summary_is_written_once_per_run(tmp_path):
    store = RunStore(tmp_path)
    for i, regime in enumerate(("full", "lora", "zero_shot")):
        store.save(_large(f"j{i}", seed=0, regime=regime))
    assert len(list((tmp_path / "datasets").glob("*.json"))) == 1
    summary = json.loads(next((tmp_path / "datasets").glob("*.json")).read_text())
    assert summary == _large("x").dataset
    assert all(store.load(f"j{i}").dataset == summary for i in range(3))


def test_numbers_and_results_csv_identical_whatever_is_inline(tmp_path, monkeypatch):
    outcomes = [_large("aaa"), _large("bbb", seed=1, regime="s"), _result("ccc", status="failed")]
    inline, apart = RunStore(tmp_path / "inline"), RunStore(tmp_path / "apart")
    monkeypatch.setattr(results_module, "INLINE_LIMIT", 10 ** 9)
    for outcome in outcomes:
        inline.save(outcome)
    monkeypatch.setattr(results_module, "INLINE_LIMIT", 0)
    for outcome in outcomes:
        apart.save(outcome)
    assert inline.results() == apart.results() == sorted(outcomes, key=lambda o: o.job_id)
    assert inline.write_table().read_text() == apart.write_table().read_text()
    old = RunStore(tmp_path / "old")
    for outcome in outcomes:
        _old_save(old, outcome)
    assert old.write_table().read_text() == apart.write_table().read_text()


def test_finished_jobs_are_known_from_their_rows_without_reading_the_json(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    store.save(_large("aaa"))
    store.save(_result("bbb", status="failed"))
    assert json.loads(store.row_path("aaa").read_text())["row"] == _large("aaa").to_row()
    monkeypatch.setattr(RunStore, "_read", lambda self, job_id: pytest.fail("the JSON was read"))
    assert store.is_finished("aaa") and not store.is_finished("bbb")
    assert [r.to_row() for r in store.rows()] == [_large("aaa").to_row(), _result("bbb", "failed").to_row()]


def test_a_replaced_or_damaged_json_is_read_again_not_trusted_from_its_row(tmp_path):
    store = RunStore(tmp_path)
    store.save(_large("aaa"))
    path = store.job_path("aaa")
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "failed", "error": "boom"}))
    assert not store.is_finished("aaa") and store.row("aaa").error == "boom"
    path.write_text("{truncated")
    assert not store.is_finished("aaa") and store.load("aaa") is None
    store.save(_large("aaa"))
    store.row_path("aaa").write_text("not json")  # a damaged row file: the JSON decides, and the row is rewritten
    assert store.is_finished("aaa") and json.loads(store.row_path("aaa").read_text())["status"] == "ok"


def test_a_damaged_arrays_file_is_not_done_or_named(tmp_path):
    from reports.load import load_run

    store = RunStore(tmp_path)
    store.save(_large("aaa"))
    arrays = tmp_path / "arrays" / "aaa.npz"
    good = arrays.read_bytes()
    arrays.write_bytes(good[: len(good) // 2])  # truncated: the job is not done
    assert not store.is_finished("aaa") and store.load("aaa") is None
    arrays.write_bytes(b"x" * len(good))  # same size, damaged: loading names the file
    assert store.load("aaa") is None
    with pytest.raises(ResultFileError, match="arrays/aaa.npz"):
        outcome_from_dict(json.loads(store.job_path("aaa").read_text()), tmp_path)
    run = load_run(tmp_path)
    assert run.results["aaa"].metrics["test"]["top1"] == 61.25  # the table needs no arrays
    with pytest.raises(ResultFileError, match="arrays/aaa.npz"):
        run.result("aaa")
    arrays.unlink()
    assert not store.is_finished("aaa")


def test_old_run_folders_load_and_get_rows(tmp_path):
    """A folder written before: indented JSON with every list inline, both class means in the statistics file."""
    from reports.load import load_run

    store = RunStore(tmp_path)
    result = _large("aaa")
    _old_save(store, result)
    means = np.random.default_rng(0).standard_normal((K, 8)).astype(np.float16)
    (tmp_path / "stats").mkdir()
    np.savez_compressed(tmp_path / "stats" / "aaa.npz", train_means=means + 1, test_means=means,
                        gap_pairwise=np.zeros(K))
    assert store.load("aaa") == result and store.is_finished("aaa")
    assert store.row_path("aaa").is_file()  # written on first reading, for the next
    assert store.row("aaa").to_row() == result.to_row()
    run = load_run(tmp_path)
    assert run.result("aaa") == result
    assert np.array_equal(run.stats("aaa")["test_means"], means)
    store.save(store.load("aaa"))  # saved again by this version: the new layout, the same result
    assert store.load("aaa") == result and (tmp_path / "arrays" / "aaa.npz").is_file()


def test_only_test_class_means_are_stored_once_per_content(tmp_path):
    store = RunStore(tmp_path)
    rng = np.random.default_rng(0)
    frozen = rng.standard_normal((K, 16)).astype(np.float32)
    tuned = rng.standard_normal((K, 16)).astype(np.float32)
    other = {"gap_pairwise": rng.standard_normal(K), "test_hist": np.ones((K, 40), dtype=np.int32)}
    for job_id, means in (("zero_shot", frozen), ("linear_probe", frozen), ("full", tuned)):
        store.save_statistics(job_id, {"train_means": means + 1, "test_means": means, **other})
    assert len(list((tmp_path / "means").glob("*.npy"))) == 2  # the frozen tower's means shared
    for job_id, means in (("zero_shot", frozen), ("linear_probe", frozen), ("full", tuned)):
        stats = read_statistics(tmp_path, f"stats/{job_id}.npz")
        assert "train_means" not in stats and "test_means_file" not in stats
        assert stats["test_means"].dtype == np.float16 and np.array_equal(stats["test_means"], means.astype(np.float16))
        assert np.array_equal(stats["gap_pairwise"], other["gap_pairwise"])
    assert read_statistics(tmp_path, "stats/none.npz") is None
    next((tmp_path / "means").glob("*.npy")).write_bytes(b"damaged")
    with pytest.raises(ResultFileError, match="means/"):
        for job_id in ("zero_shot", "full"):
            read_statistics(tmp_path, f"stats/{job_id}.npz")


def test_a_tiny_run_gives_the_same_numbers_with_arrays_apart(tmp_path, monkeypatch):
    """The whole path, twice: every list inline, and every list in arrays/ (INLINE_LIMIT 0); then a rerun that
    recognises the finished jobs from their rows alone."""
    from bench.cli import main

    command = ["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--model", "ltbench-tiny",
               "--pretrained", "none", "--device", "cpu", "--epochs", "1", "-q", "--no-report"]
    assert main([*command, "--out", str(tmp_path / "inline")]) == 0
    monkeypatch.setattr(results_module, "INLINE_LIMIT", 0)
    assert main([*command, "--out", str(tmp_path / "apart")]) == 0
    inline, apart = RunStore(tmp_path / "inline"), RunStore(tmp_path / "apart")
    assert (tmp_path / "apart" / "arrays").is_dir() and len(list((tmp_path / "apart" / "datasets").iterdir())) == 1
    assert len(list((tmp_path / "apart" / "means").glob("*.npy"))) == 1  # zero_shot and linear_probe share them
    def numbers(metrics):  # all but the evaluation's time
        return {split: {k: v for k, v in m.items() if k != "seconds"} for split, m in metrics.items()}

    for a, b in zip(inline.results(), apart.results()):
        assert a.job_id == b.job_id and numbers(a.metrics) == numbers(b.metrics) and a.dataset == b.dataset
        assert a.statistics["groups"] == b.statistics["groups"]
        assert "per_class_acc" not in json.loads(apart.job_path(b.job_id).read_text())["metrics"]["test"]
    timing = ("train_s", "total_s")
    tables = [pd.read_csv(s.run_dir / "results.csv").drop(columns=list(timing)) for s in (inline, apart)]
    pd.testing.assert_frame_equal(*tables)
    stamps = {p: p.stat().st_mtime_ns for p in apart.jobs_dir.glob("*.json")}
    monkeypatch.setattr(RunStore, "_read", lambda self, job_id: pytest.fail("a finished job's JSON was read"))
    assert main([*command, "--out", str(tmp_path / "apart")]) == 0
    assert {p: p.stat().st_mtime_ns for p in apart.jobs_dir.glob("*.json")} == stamps
    assert math.isfinite(tables[1].loc[0, "top1"])
