"""Process faults: two runs on one folder, the driver killed or interrupted, a full disk."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.io import StorageError, atomic_file
from bench.results import RunStore
from tests.conftest import REPO, unfinished_checkpoint, wait_for

TINY = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q",
        "--no-report"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def _cli(out: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "run_bench.py"), *TINY, "--out", str(out), *args]


def _children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_two_identical_runs_on_one_folder_train_each_job_once(tmp_path):
    out = tmp_path / "run"
    args = ["--regimes", "linear_probe", "bitfit", "--epochs", "2", "--no-train-eval"]
    first = subprocess.Popen(_cli(out, *args), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(_cli(out, *args), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    assert first.wait(300) == 0 and second.wait(300) == 0
    logs = list((out / "logs").glob("*.log"))
    assert len(logs) == 2
    for log in logs:  # a job trained twice would have logged its epochs twice
        text = log.read_text()
        assert text.count("epoch 1/2") == 1 and text.count("epoch 2/2") == 1, text
    assert len(list((out / "jobs").glob("*.json"))) == 2


def test_sigkill_of_the_driver_leaves_no_orphan_workers_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--regimes", "linear_probe", "full", "--epochs", "30", "--workers", "2", "--no-train-eval"]
    driver = subprocess.Popen(_cli(out, *args), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: len([c for c in _children(driver.pid) if _alive(c)]) == 2, 120)
    workers = _children(driver.pid)
    wait_for(lambda: len(list((out / "logs").glob("*.log"))) == 2, 120)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    wait_for(lambda: not any(_alive(w) for w in workers), 60)
    assert not list((out / "pending").glob("*")) if (out / "pending").exists() else True
    assert main([*TINY, "--out", str(out), "--regimes", "linear_probe", "full", "--epochs", "1", "--workers", "2",
                 "--no-train-eval"]) == 0  # in-process: the rerun's own process start is not the subject


@pytest.mark.parametrize("workers, signum", [("1", signal.SIGTERM), ("2", signal.SIGINT)])
def test_ctrl_c_or_sigterm_prints_one_line_and_the_rerun_resumes(tmp_path, workers, signum):
    out = tmp_path / "run"
    args = ["--regimes", "linear_probe", "full", "--epochs", "4", "--no-train-eval", "--workers", workers]
    driver = subprocess.Popen(_cli(out, *args), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list((out / "jobs").glob("*.json"))) == 1 and unfinished_checkpoint(out), 120)
    workers_before = _children(driver.pid)
    driver.send_signal(signum)
    err = driver.communicate(timeout=60)[1]
    assert driver.returncode == 130
    assert not any(_alive(pid) for pid in workers_before)  # no child outlives the driver
    assert "Traceback" not in err and err.count("interrupted") == 1 and "rerun the same command" in err
    assert (out / "results.csv").is_file()
    finished = json.loads(next((out / "jobs").glob("*.json")).read_text())
    assert finished["status"] == "ok" and finished["config"]["regime"] == "linear_probe"
    assert main([*TINY, "--out", str(out), *args]) == 0  # the rerun, in-process
    log = next(p for p in (out / "logs").glob("*.log") if "full" in p.read_text())
    assert "resuming" in log.read_text()


def _full_disk(monkeypatch):
    """Every temporary file of atomic_file is /dev/full: writes fail with ENOSPC, as on a full disk."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, path = real(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("write", [
    lambda fh: torch.save({"weights": torch.zeros(100_000)}, fh),  # a checkpoint: torch hides the OSError
    lambda fh: fh.write(b"x" * 100_000),
])
def test_a_full_disk_names_the_folder_and_the_fix(tmp_path, monkeypatch, write):
    _full_disk(monkeypatch)
    with pytest.raises(StorageError, match=rf"cannot write {tmp_path}/sub/file: the disk is full.*another --out"):
        with atomic_file(tmp_path / "sub" / "file") as fh:
            write(fh)
    assert not [p for p in (tmp_path / "sub").iterdir()]  # no temporary file left behind


def test_a_result_that_cannot_be_saved_is_a_failure_and_the_run_goes_on(tmp_path, monkeypatch):
    from bench.scheduler.execute import execute
    from tests.conftest import make_job

    store = RunStore(tmp_path)
    store.check_writable()
    _full_disk(monkeypatch)
    result = execute(make_job("zero_shot", runtime=None), tmp_path)
    assert result.status == "failed" and "result not saved" in result.error and "disk is full" in result.error
