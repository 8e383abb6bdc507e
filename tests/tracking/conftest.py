"""Readers of what the trackers wrote, and the small data the tracker tests train on."""
from __future__ import annotations

import json
from pathlib import Path

SMALL = ["synthetic_lt.num_classes=6", "synthetic_lt.max_per_class=150", "synthetic_lt.test_per_class=4",
         "synthetic_lt.imbalance_ratio=15"]  # ~350 training images, classes in all three groups (with 20% held out too)
TRACKED = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q",
           "--no-report", "--no-train-eval", "--set", *SMALL]
TWO_EPOCHS = ["--epochs", "2", "--set", "linear_probe.batch_size=64"]  # 5 steps an epoch


def job_results(run: Path) -> dict[str, dict]:
    """{job id: its JSON}."""
    return {path.stem: json.loads(path.read_text()) for path in (run / "jobs").glob("*.json")}


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} as TensorBoard shows them (an earlier attempt's purged steps left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
