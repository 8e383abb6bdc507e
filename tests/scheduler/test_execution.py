import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.cli import main
from regimes import REGIMES, Regime, register_regime
from tests.conftest import REPO, unfinished_checkpoint

TINY = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q",
        "--no-report"]


def _results(run: Path) -> dict[str, dict]:
    return {r["config"]["regime"]: r for r in (json.loads(p.read_text()) for p in (run / "jobs").glob("*.json"))}


def _cli(out: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "run_bench.py"), *TINY, "--out", str(out), *args]


def test_sigkill_mid_run_then_rerun_loses_nothing_and_resumes_from_the_epoch_checkpoint(tmp_path):
    args = ["--regimes", "linear_probe", "full", "--epochs", "3", "--no-train-eval"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed, *args), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until one job is finished and the other has an epoch checkpoint
        if list((killed / "jobs").glob("*.json")) and unfinished_checkpoint(killed):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = list((killed / "jobs").glob("*.json"))
    assert len(finished) == 1, "expected to kill the run between the first and the second job"
    stamp = finished[0].stat().st_mtime_ns

    assert subprocess.run(_cli(killed, *args), cwd=REPO, env=env, capture_output=True).returncode == 0
    assert finished[0].stat().st_mtime_ns == stamp  # the finished job was not rerun
    resumed = _results(killed)
    assert "resuming" in Path(resumed["full"]["log"]).read_text()
    assert not list((killed / "checkpoints").glob("*.pt"))  # removed once the job has its result

    clean = tmp_path / "clean"
    assert main([*TINY, "--out", str(clean), *args]) == 0  # in-process: the unbroken run is not the subject
    unbroken = _results(clean)
    for regime in ("linear_probe", "full"):
        assert [h["loss"] for h in resumed[regime]["history"]] == [h["loss"] for h in unbroken[regime]["history"]]
        assert resumed[regime]["metrics"]["test"]["per_class_acc"] == \
            unbroken[regime]["metrics"]["test"]["per_class_acc"]


CPP_ERROR = ("shape '[2, -1]' is invalid for input of size 3\n"  # torch's message with its C++ backtrace
             "Exception raised from infer_size_impl at /pytorch/aten/src/ATen/InferSize.h:95 (most recent call "
             "first):\nframe #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9e (0x7f in libc10.so)\n"
             "frame #1: at::infer_size_dv(c10::ArrayRef<long>, long) + 0x12 (0x7f in libtorch_cpu.so)\n")


@pytest.fixture
def plugin_regimes():
    @register_regime("test_broken")
    class Broken(Regime):
        def adapt(self, model, data, recipe):
            raise RuntimeError("this regime is broken on purpose")

    @register_regime("test_cpp_error")
    class CppError(Regime):
        def adapt(self, model, data, recipe):
            raise RuntimeError(CPP_ERROR)

    class OutOfMemoryAbove(torch.nn.Module):
        """Pretends the GPU holds at most `limit` images per forward pass while training."""

        def __init__(self, head, limit):
            super().__init__()
            self.head, self.limit = head, limit

        def forward(self, features):
            if self.training and len(features) > self.limit:
                raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (pretend, batch {len(features)})")
            return self.head(features)

    @register_regime("test_small_gpu")
    class SmallGPU(Regime):
        def make_head(self, backbone, data, recipe):
            return OutOfMemoryAbove(super().make_head(backbone, data, recipe), 16)

    @register_regime("test_tiny_gpu")
    class TinyGPU(Regime):
        def make_head(self, backbone, data, recipe):
            return OutOfMemoryAbove(super().make_head(backbone, data, recipe), 0)

    yield
    for name in ("test_broken", "test_cpp_error", "test_small_gpu", "test_tiny_gpu"):
        REGIMES._entries.pop(name)


def test_failures_are_isolated_and_out_of_memory_retries_with_half_the_micro_batch(tmp_path, plugin_regimes):
    code = main([*TINY, "--out", str(tmp_path), "--epochs", "1", "--no-train-eval",
                 "--regimes", "test_broken", "zero_shot", "test_small_gpu", "test_tiny_gpu", "linear_probe",
                 "--set", "all.batch_size=32", "linear_probe.lr=1e38", "linear_probe.classifier=linear",
                 "linear_probe.classifier_init=random"])
    assert code == 1
    results = _results(tmp_path)
    assert {k: r["status"] for k, r in results.items()} == {
        "test_broken": "failed", "zero_shot": "ok", "test_small_gpu": "ok", "test_tiny_gpu": "failed",
        "linear_probe": "failed"}
    assert "this regime is broken on purpose" in results["test_broken"]["error"]
    assert "broken on purpose" in Path(results["test_broken"]["log"]).read_text()
    assert "NonFiniteLossError" in results["linear_probe"]["error"]
    assert results["test_small_gpu"]["oom_retry"]["micro_batch_size"] == 16
    assert "out of GPU memory even with micro-batch 16" in results["test_tiny_gpu"]["error"]


def test_a_failure_is_one_line_on_the_console_and_whole_in_its_record(tmp_path, plugin_regimes, capsys, caplog):
    """A torch error carrying its C++ backtrace: the job's JSON and log keep all of it; the console (printed
    and logged) names the job once, with the error's type and first line and where its log is."""
    assert main([*TINY, "--out", str(tmp_path), "--epochs", "1", "--no-train-eval",
                 "--regimes", "test_cpp_error", "zero_shot"]) == 1
    out, err = capsys.readouterr()
    console = out + err + caplog.text
    record = _results(tmp_path)["test_cpp_error"]
    assert record["error"] == "RuntimeError: shape '[2, -1]' is invalid for input of size 3"
    assert "frame #1: at::infer_size_dv" in record["traceback"]
    assert "frame #1: at::infer_size_dv" in Path(record["log"]).read_text()
    assert "frame #" not in console and "Exception raised from" not in console
    named = [line for line in console.splitlines() if "is invalid for input of size 3" in line]
    assert named == [f"  synthetic_lt/test_cpp_error/seed0: {record['error']} (log: {record['log']})"]
    assert "1 of 2 jobs failed" in err


def test_frozen_features_and_text_embeddings_are_computed_once_and_shared(tmp_path):
    assert main([*TINY, "--out", str(tmp_path), "--epochs", "1", "--regimes", "zero_shot", "linear_probe",
                 "--seeds", "0"]) == 0
    cache = tmp_path / "cache"
    assert len(list(cache.glob("features-*.pt"))) == 2  # test and train split, shared by both regimes
    assert len(list(cache.glob("text-*.pt"))) == 1
    from bench.training.engine import train
    from tests.conftest import make_job

    uncached = train(make_job("linear_probe", epochs=1))  # no run folder: no cache
    assert _results(tmp_path)["linear_probe"]["metrics"]["test"]["per_class_acc"] == \
        uncached.metrics["test"]["per_class_acc"]


def test_parallel_cpu_jobs_in_child_processes(tmp_path):
    assert main([*TINY, "--out", str(tmp_path), "--epochs", "1", "--workers", "2", "--no-train-eval",
                 "--regimes", "zero_shot", "linear_probe", "bitfit"]) == 0
    results = _results(tmp_path)
    assert {r["status"] for r in results.values()} == {"ok"} and len(results) == 3
    assert all(Path(r["log"]).is_file() for r in results.values())
    assert not list((tmp_path / "pending").glob("*"))
