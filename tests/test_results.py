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
