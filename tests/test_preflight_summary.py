"""Preflight says one line per data set: sizes, per-class range and groups, never its class names or counts."""
import logging

from bench.cli import check_data
from bench.data import dataset_config
from bench.data.checks import summary_line
from bench.training import Runtime

INAT = {"name": "inat2018", "num_classes": 8142, "train_size": 437513, "test_size": 24426, "val_size": None,
        "max_count": 1000, "min_count": 2, "groups": {"many": 842, "medium": 4076, "few": 3224},
        "fingerprint": "f" * 64, "train_class_counts": [2] * 8142,
        "classnames": [f"species {c}" for c in range(8142)]}


def test_summary_line_is_one_short_line_without_names_or_counts():
    line = summary_line(INAT)
    assert "\n" not in line and len(line) < 200 and "species" not in line
    assert line == ("data inat2018: 8,142 classes, 437,513 train / 24,426 test images, 2–1,000 per class, groups "
                    "many 842/medium 4,076/few 3,224, fingerprint ffffffffffff")
    assert "/ 500 val images" in summary_line({**INAT, "val_size": 500})


def test_check_data_logs_one_line_per_data_set(tmp_path, caplog):
    configs = [dataset_config("synthetic_lt"), dataset_config("synthetic_lt", {"imbalance_ratio": 10})]
    with caplog.at_level(logging.INFO, logger="ltbench"):
        fingerprints = check_data(configs + configs[:1], Runtime(data_root=str(tmp_path), device="cpu"), False)
    lines = [r.getMessage() for r in caplog.records if r.name == "ltbench"]
    assert len(fingerprints) == 2 and len(lines) == 2
    assert all(line.startswith("data synthetic_lt: ") and "\n" not in line for line in lines)
