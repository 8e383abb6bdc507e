import json

import pandas as pd

from bench.results import RunStore, table_row, write_atomic


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "a" / "x.json"
    write_atomic(target, "{}")
    write_atomic(target, '{"v": 2}')
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def _result(job_id, status="ok", few=None, dataset="d", regime="r"):
    return {"job_id": job_id, "status": status, "config": {"dataset": dataset, "regime": regime, "seed": 0},
            "metrics": {"test": {"top1": 50.0, "many": 60.0, "medium": 40.0, "few": few}}}


def test_store_finished_and_failed_jobs(tmp_path):
    store = RunStore(tmp_path)
    store.save(_result("aaa"))
    store.save(_result("bbb", status="failed"))
    store.job_path("ccc").write_text("{truncated")  # a half-written file is not a result
    assert store.is_finished("aaa")
    assert not store.is_finished("bbb") and not store.is_finished("ccc") and not store.is_finished("ddd")
    assert {r["job_id"] for r in store.results()} == {"aaa", "bbb"}


def test_table_keeps_empty_groups_empty(tmp_path):
    store = RunStore(tmp_path)
    store.save(_result("aaa", few=None))
    store.save(_result("bbb", few=12.5, regime="s"))
    frame = pd.read_csv(store.write_table())
    assert list(frame["regime"]) == ["r", "s"]
    assert pd.isna(frame.loc[0, "few"]) and frame.loc[1, "few"] == 12.5
    assert ",," in (tmp_path / "results.csv").read_text()  # an empty cell, not 0 or "nan"
    assert table_row(_result("x"))["top1"] == 50.0
