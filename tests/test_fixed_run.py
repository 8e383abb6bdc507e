"""Proof of no change: a fixed CPU run's per-class accuracies, losses and feature statistics, kept from before a
refactor, must come out again. Accuracies are counts and must match exactly; losses and statistics are floats
summed by CPU kernels that may order their sums differently on another processor, so they match to 1e-6.

After a change that is meant to change numbers, rewrite the record and say why in the commit:
    LTBENCH_RECORD_FIXED_RUN=1 python -m pytest tests/test_fixed_run.py
"""
import json
import os
from pathlib import Path

import pytest
import torch

from bench.cli import main

RECORD = Path(__file__).parent / "fixtures" / "fixed_run.json"
RECORD_THREADS = 2  # the record was taken on a 2-core machine with torch's default of one thread per core
REGIMES = ["zero_shot", "linear_probe", "full", "lora", "lift_plus", "sparse"]
COMMAND = ["--datasets", "synthetic_lt", "--regimes", *REGIMES, "--model", "ltbench-tiny", "--pretrained", "none",
           "--device", "cpu", "--epochs", "2", "--seeds", "0", "-q", "--no-report"]


def _figures(run: Path) -> dict:
    figures = {}
    for path in sorted((run / "jobs").glob("*.json")):
        result = json.loads(path.read_text())
        figures[result["config"]["regime"]] = {
            "test_per_class_acc": result["metrics"]["test"]["per_class_acc"],
            "train_per_class_acc": result["metrics"]["train"]["per_class_acc"],
            "losses": [epoch["loss"] for epoch in result["history"]],
            "statistics": result["statistics"]["groups"],
            "trainable": result["params"]["trainable"],
        }
    return figures


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    """The run on the record's 2 CPU threads, whatever the machine (or a one-thread test worker) would use: the
    threads split the kernels' sums, and a gap of two near-equal means shows the order at 1e-6."""
    run = tmp_path_factory.mktemp("fixed_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(RECORD_THREADS)
    try:
        assert main([*COMMAND, "--out", str(run)]) == 0
    finally:
        torch.set_num_threads(threads)
    figures = _figures(run)
    if os.environ.get("LTBENCH_RECORD_FIXED_RUN"):
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


@pytest.mark.parametrize("regime", REGIMES)
def test_the_fixed_run_gives_the_recorded_figures(figures, regime):
    recorded = json.loads(RECORD.read_text())[regime]
    now = figures[regime]
    assert now["test_per_class_acc"] == recorded["test_per_class_acc"]
    assert now["train_per_class_acc"] == recorded["train_per_class_acc"]
    assert now["trainable"] == recorded["trainable"]
    assert now["losses"] == pytest.approx(recorded["losses"], rel=1e-6)
    assert now["statistics"].keys() == recorded["statistics"].keys()
    for group, values in recorded["statistics"].items():  # statistics added after the record are not in it
        assert {k: now["statistics"][group][k] for k in values} == pytest.approx(values, rel=1e-6, abs=1e-9,
                                                                                nan_ok=True)
