"""Model selection (--select): per data set, regime and seed, the candidate best on the validation split with its
test numbers, beside the candidate choosing on the test split would have picked, the references' protocol.

The gap between the two is how much choosing on test flatters a regime: the test accuracy it reports but would
not get on images that played no part in choosing.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from bench.job_result import JobOutcome, JobResult
from bench.plan import SELECTION_FILE

SHOWN = ("top1", "few")  # test metrics shown beside the selection metric


def read_selection(run_dir: str | Path) -> dict | None:
    """The run's --select record (bench.plan), or None when it selected nothing."""
    path = Path(run_dir) / SELECTION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _value(result: JobResult, split: str, metric: str) -> float | None:
    return (result.metrics.get(split) or {}).get(metric)


def _best(members: list[dict], results: dict[str, JobResult], split: str, metric: str) -> dict | None:
    """The member best on `split` (the first of equals, in planned order); None when none has the metric."""
    scored = [m for m in members if _value(results[m["job_id"]], split, metric) is not None]
    return max(scored, key=lambda m: _value(results[m["job_id"]], split, metric)) if scored else None


def _point(member: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in member["point"].items())


def choices(record: dict, results: dict[str, JobOutcome]) -> pd.DataFrame:
    """One row per data set, regime and seed with a finished candidate: the value chosen on validation and its
    test numbers, the value choosing on test picks and its, and `flattery` = test-chosen − validation-chosen
    test metric (≥ 0 by construction: choosing on test can only look better on test)."""
    metric = record["metric"]
    finished = {job_id: r for job_id, r in results.items() if isinstance(r, JobResult)}
    groups: dict[tuple, list[dict]] = {}
    for member in record["jobs"]:
        if member["job_id"] in finished:
            groups.setdefault((member["dataset"], member["regime"], member["seed"]), []).append(member)
    rows = []
    for (dataset, regime, seed), members in groups.items():
        on_val, on_test = _best(members, finished, "val", metric), _best(members, finished, "test", metric)
        if on_val is None or on_test is None:
            continue
        chosen, oracle = finished[on_val["job_id"]], finished[on_test["job_id"]]
        planned = sum(m["dataset"] == dataset and m["regime"] == regime and m["seed"] == seed for m in record["jobs"])
        rows.append({"dataset": dataset, "regime": regime, "seed": seed, "candidates": f"{len(members)}/{planned}",
                     "chosen on val": _point(on_val), f"val {metric}": _value(chosen, "val", metric),
                     f"test {metric}": _value(chosen, "test", metric),
                     **{f"test {m}": _value(chosen, "test", m) for m in SHOWN if m != metric},
                     "chosen on test": _point(on_test), f"its test {metric}": _value(oracle, "test", metric),
                     "flattery": _value(oracle, "test", metric) - _value(chosen, "test", metric)})
    return pd.DataFrame(rows)


def selection_section(run) -> str:
    """The report's model-selection section (reports.load.Run); empty when the run selected nothing."""
    record = read_selection(run.path)
    if not record:
        return ""
    table = choices(record, run.results)
    if table.empty:  # every candidate failed, or none has the metric on both splits: say so, never drop it
        return (f"<h2>Model selection</h2><p>No pick: no data set, regime and seed has a finished candidate with "
                f"the {html.escape(record['metric'])} of both the validation and the test split.</p>")
    axes = "; ".join(f"{name} in {', '.join(values)}" for name, values in record["axes"].items())
    return (f"<h2>Model selection</h2><p>--select {html.escape(axes)}, picked per data set, regime and seed on "
            f"the validation split's {html.escape(record['metric'])} (%). chosen on val: the value picked and its "
            f"test numbers, what this benchmark reports. chosen on test: the value the references' protocol "
            f"(choosing on the test set) would have picked, with its test {html.escape(record['metric'])}; "
            f"flattery = its test number − the honest one, how much choosing on test flatters the regime. "
            f"candidates: finished of planned.</p>"
            + table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.2f}", escape=True))
