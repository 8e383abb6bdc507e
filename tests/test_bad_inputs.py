"""The battery of bad inputs and faults (README, "What ltbench checks"): one row per case, each asserting the
exit code, that the message names the problem, and that what a run had already finished survives."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from bench.cli import main
from tests.data.test_cifar import write_cifar100
from tests.data.test_split_files import write_tree

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run folder with finished jobs, results.csv and a report: every case runs against a copy of it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
                 "--no-train-eval", "--out", str(out), *TINY]) == 0
    return out


def _digest(run: Path) -> dict[str, str]:
    """What must survive a bad command: every finished job's JSON, results.csv and the report."""
    files = sorted(run.glob("jobs/*.json")) + [run / "results.csv", run / "report.html"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _places(root: Path) -> Path:
    write_tree(root, "places_lt")
    return root / "Places_LT"


def _edit(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")


def missing_test_image(root: Path) -> list[str]:
    _places(root)
    (root / "Places" / "val/class2/Places365_val_20.jpg").unlink()
    return ["--datasets", "places_lt", "--data-root", str(root)]


def truncated_test_image(root: Path) -> list[str]:
    _places(root)
    image = root / "Places" / "val/class1/Places365_val_10.jpg"
    image.write_bytes(image.read_bytes()[:200])
    return ["--datasets", "places_lt", "--data-root", str(root), "--verify-images"]


def missing_train_image(root: Path) -> list[str]:
    _places(root)
    (root / "Places" / "train/class0/00000001.jpg").unlink()
    return ["--datasets", "places_lt", "--data-root", str(root)]


def empty_class(root: Path) -> list[str]:
    split = _places(root)
    _edit(split / "train.txt", lambda lines: [line for line in lines if not line.endswith(" 2")])
    return ["--datasets", "places_lt", "--data-root", str(root)]


def duplicate_line(root: Path) -> list[str]:
    split = _places(root)
    _edit(split / "train.txt", lambda lines: lines + [lines[0]])
    return ["--datasets", "places_lt", "--data-root", str(root)]


def undecodable_classnames(root: Path) -> list[str]:
    split = _places(root)
    (split / "classnames.txt").write_bytes("first\nsecond\nthird\n".encode("utf-16"))
    return ["--datasets", "places_lt", "--data-root", str(root)]


def cifar_label_out_of_range(root: Path) -> list[str]:
    write_cifar100(root, per_class=20, test_per_class=2)
    path = root / "cifar-100-python" / "test"
    with open(path, "rb") as fh:
        entry = pickle.load(fh)
    entry["fine_labels"][3] = 100
    with open(path, "wb") as fh:
        pickle.dump(entry, fh)
    return ["--datasets", "cifar100_lt", "--data-root", str(root)]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def crafted_cifar_pickle(root: Path) -> list[str]:
    write_cifar100(root, per_class=20, test_per_class=2)
    with open(root / "cifar-100-python" / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": _Exploit()}, fh)
    return ["--datasets", "cifar100_lt", "--data-root", str(root)]


def out_is_a_file(root: Path) -> list[str]:
    (root / "file").write_text("not a folder")
    return ["--datasets", "synthetic_lt", "--out", str(root / "file" / "run")]


def out_read_only(root: Path) -> list[str]:
    return ["--datasets", "synthetic_lt", "--out", "/proc/ltbench-run"]


@dataclass(frozen=True)
class Case:
    name: str
    args: Callable[[Path], list[str]] | list[str]
    message: str  # a regular expression the error output must match
    code: int = 2


SYN = ["--datasets", "synthetic_lt"]
CASES = [
    Case("negative epochs", SYN + ["--epochs", "-3"], r"--epochs: must be >= 1 and <= 10000, got -3"),
    Case("zero epochs", SYN + ["--epochs", "0"], r"--epochs: must be >= 1 and <= 10000, got 0"),
    Case("zero epochs through --set", SYN + ["--set", "full.epochs=0"], r"full.epochs=0: a regime that trains"),
    Case("eval batch size 0", SYN + ["--eval-batch-size", "0"], r"--eval-batch-size: must be >= 1"),
    Case("micro-batch size 0", SYN + ["--micro-batch-size", "0"], r"--micro-batch-size: must be >= 1"),
    Case("batch size 0", SYN + ["--set", "all.batch_size=0"], r"batch_size must be >= 1, got 0"),
    Case("lora rank 0", SYN + ["--set", "lora.rank=0"], r"lora.rank must be >= 1, got 0"),
    Case("infinite lr", SYN + ["--set", "bitfit.lr=inf"], r"bitfit.lr must be a finite number, got inf"),
    Case("NaN lr", SYN + ["--set", "bitfit.lr=nan"], r"bitfit.lr must be a finite number, got nan"),
    Case("negative weight decay", SYN + ["--set", "full.weight_decay=-1"], r"weight_decay must be >= 0"),
    Case("momentum 1", SYN + ["--set", "full.momentum=1"], r"full.momentum must be >= 0 and < 1, got 1"),
    Case("imbalance ratio 0", SYN + ["--set", "synthetic_lt.imbalance_ratio=0"], r"imbalance_ratio must be >= 1"),
    Case("imbalance ratio option 0", SYN + ["--imbalance-ratio", "0"], r"--imbalance-ratio: must be >= 1"),
    Case("partial blocks beyond the model", SYN + ["--regimes", "partial", "--set", "partial.blocks=99"],
         r"partial.blocks=99 but the model has 4 blocks"),
    Case("seed too large", SYN + ["--seeds", str(2**31)], r"--seeds: must be >= 0 and <= 2147483647, got 2147483648"),
    Case("negative seed", SYN + ["--seeds", "-1"], r"--seeds: must be >= 0 and <= 2147483647, got -1"),
    Case("a GPU that is not there", SYN + ["--gpus", "7", "--device", "auto"], r"--gpus 7: no GPU is visible"),
    Case("cuda:0 without a GPU", SYN + ["--device", "cuda:0"], r"--device cuda:0: there is no GPU 0"),
    Case("unknown protocol", SYN + ["--protocol", "nope"], r"invalid choice: 'nope'"),
    Case("missing test image", missing_test_image, r"Places365_val_20\.jpg.*test\.txt, line 3"),
    Case("truncated test image", truncated_test_image, r"Places365_val_10\.jpg.*test\.txt, line 2"),
    Case("missing train image", missing_train_image, r"00000001\.jpg.*train\.txt, line 2"),
    Case("class without training images", empty_class, r"third"),
    Case("duplicate split line", duplicate_line, r"train\.txt.*lines? 1 and 7"),
    Case("class names not UTF-8", undecodable_classnames, r"classnames\.txt.*UTF-8"),
    Case("CIFAR label out of range", cifar_label_out_of_range, r"cifar-100-python/test.*100"),
    Case("crafted CIFAR pickle", crafted_cifar_pickle, r"cifar-100-python/meta.*system"),
    Case("--out under a file", out_is_a_file, r"file/run"),
    Case("--out read-only", out_read_only, r"/proc/ltbench-run"),
]


def exit_code(argv: list[str]) -> int:
    """main()'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_naming_the_problem_and_loses_nothing(case, finished_run, tmp_path, capsys,
                                                                 monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digest(run)
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.chdir(root)  # a crafted pickle would write PWNED here
    args = case.args(root) if callable(case.args) else list(case.args)
    argv = (["--out", str(run)] if "--out" not in args else []) + TINY + args  # the case's options win
    assert exit_code(argv) == case.code
    err = capsys.readouterr().err
    assert re.search(case.message, err, re.S), err
    assert "Traceback" not in err
    assert _digest(run) == before  # nothing already computed is lost or changed
    assert not (root / "PWNED").exists()


def test_non_finite_loss_is_recorded_and_the_run_goes_on_to_its_table_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
                 "--set", "linear_probe.lr=1e38", "linear_probe.classifier=linear",
                 "linear_probe.classifier_init=random", "--out", str(out), *TINY])
    assert code == 1
    err = capsys.readouterr().err
    assert "1 of 2 jobs failed" in err and "NonFiniteLossError" in err
    failed = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    assert sorted(r["status"] for r in failed) == ["failed", "ok"]
    table = pd.read_csv(out / "results.csv")
    assert sorted(table.status) == ["failed", "ok"]
    assert (out / "report.html").is_file() and (out / "report.pdf").is_file()


def test_failure_records_with_non_finite_values_are_saved(tmp_path):
    from bench.job_result import JobResult
    from bench.results import RunStore

    store = RunStore(tmp_path)
    store.save(JobResult("x", "x", {}, metrics={"test": {"top1": float("nan")}},
                         history=[{"lr": float("inf")}, {"lr": -float("inf")}]))
    saved = store.load("x")
    assert saved.metrics["test"]["top1"] == "nan" and [h["lr"] for h in saved.history] == ["inf", "-inf"]


def test_changed_split_or_image_makes_new_jobs_and_keeps_the_old(tmp_path, capsys):
    split = _places(tmp_path / "data")
    base = ["--datasets", "places_lt", "--data-root", str(tmp_path / "data"), "--regimes", "zero_shot",
            "--no-train-eval", "--out", str(tmp_path / "run"), *TINY]
    assert main(base) == 0
    first = {p.name for p in (tmp_path / "run" / "jobs").glob("*.json")}
    image = tmp_path / "data" / "Places" / "train/class2/00000001.jpg"
    shutil.copy(tmp_path / "data" / "Places" / "train/class2/00000000.jpg", image)
    _edit(split / "train.txt", lambda lines: lines + ["train/class2/00000001.jpg 2"])
    assert main(base) == 0
    second = {p.name for p in (tmp_path / "run" / "jobs").glob("*.json")}
    assert first < second and len(second) == 2  # a new job; the old result stays on disk
    os.utime(image, ns=(1, 1))  # the same file list, other image content
    assert main(base) == 0
    assert len(list((tmp_path / "run" / "jobs").glob("*.json"))) == 3
    results = [json.loads(p.read_text()) for p in (tmp_path / "run" / "jobs").glob("*.json")]
    assert len({r["config"]["data_fingerprint"] for r in results}) == 3
    newest = max((tmp_path / "run" / "jobs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    table = pd.read_csv(tmp_path / "run" / "results.csv")  # like the report, only the current data's job
    assert list(table.job_id) == [newest.stem]
    assert "Traceback" not in capsys.readouterr().err
