"""The SLURM backend through submitit's local executor (real task processes, real pickling): plan to report, a
killed task and its rerun, a preempted task requeued, a failing job isolated; what reaches sbatch; bad options."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.scheduler.slurm_backend import JobTask, SlurmSettings, check_cluster, make_executor
from bench.scheduler.slurm_options import slurm_settings
from tests.conftest import REPO, make_job, unfinished_checkpoint, wait_for

pytest.importorskip("submitit")
TINY = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q"]
LOCAL_SLURM = ["--backend", "slurm", "--slurm-cluster", "local"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def _results(run: Path) -> dict[str, dict]:
    return {r["config"]["regime"]: r for r in (json.loads(p.read_text()) for p in (run / "jobs").glob("*.json"))}


def _task_processes(out: Path) -> list[int]:
    """The pids of the submitit tasks running jobs of the run folder `out` (their command names its folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in command and any(str(out).encode() in part for part in command):
            found.append(int(entry.name))
    return found


def test_plan_to_report_as_array_tasks_with_the_local_backends_job_ids_and_numbers(tmp_path):
    args = ["--regimes", "zero_shot", "linear_probe", "--epochs", "1", "--no-train-eval"]
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    assert main([*TINY, "--out", str(slurm), *args, *LOCAL_SLURM, "--slurm-array-parallelism", "2"]) == 0
    assert main([*TINY, "--out", str(local), *args, "--no-report"]) == 0
    assert sorted(p.name for p in (slurm / "jobs").glob("*.json")) == \
        sorted(p.name for p in (local / "jobs").glob("*.json"))  # the same job ids
    by_slurm, by_local = _results(slurm), _results(local)
    for regime in ("zero_shot", "linear_probe"):
        assert by_slurm[regime]["status"] == "ok"
        assert by_slurm[regime]["metrics"]["test"]["per_class_acc"] == \
            by_local[regime]["metrics"]["test"]["per_class_acc"]
    assert len(list((slurm / "slurm").glob("*/*_log.err"))) == 2  # one submitit task, with its logs, per job
    assert (slurm / "results.csv").is_file() and (slurm / "report.html").is_file()


def test_a_killed_task_is_recorded_with_its_log_and_the_rerun_resumes_it_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--no-report", "--out", str(out), "--regimes", "linear_probe", "full", "--epochs", "3",
            "--no-train-eval", *LOCAL_SLURM]  # one task at a time: linear_probe's, then full's
    driver = subprocess.Popen([sys.executable, str(REPO / "run_bench.py"), *args], cwd=REPO, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list((out / "jobs").glob("*.json")) and unfinished_checkpoint(out) and _task_processes(out), 180)
    for pid in _task_processes(out):  # full's task, after its first epoch
        os.kill(pid, signal.SIGKILL)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 1, err
    killed = _results(out)["full"]
    assert killed["status"] == "failed" and "ended without a result" in killed["error"]
    assert Path(killed["error"].rsplit("its log: ", 1)[1]).is_file()  # submitit's log of the task
    assert "synthetic_lt/full/seed0: local task" in err and "1 of 2 jobs failed" in err
    finished = next((out / "jobs").glob(f"{_results(out)['linear_probe']['job_id']}.json"))
    stamp = finished.stat().st_mtime_ns

    assert main(args) == 0  # the rerun: in-process driver, the task in its own process again
    assert finished.stat().st_mtime_ns == stamp  # the finished job was not rerun
    resumed = _results(out)["full"]
    assert resumed["status"] == "ok" and "resuming" in Path(resumed["log"]).read_text()
    assert not list((out / "checkpoints").glob("*.pt"))


def test_a_preempted_task_is_requeued_and_resumes_from_its_epoch_checkpoint(tmp_path):
    """SIGUSR2 is what SLURM sends before a time limit or a preemption: submitit checkpoints the task (JobTask)
    and requeues it, and the requeued task resumes the job where its last epoch ended."""
    out = tmp_path / "run"
    args = [*TINY, "--no-report", "--out", str(out), "--regimes", "full", "--epochs", "3", "--no-train-eval",
            *LOCAL_SLURM]
    driver = subprocess.Popen([sys.executable, str(REPO / "run_bench.py"), *args], cwd=REPO, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: unfinished_checkpoint(out) and _task_processes(out), 180)
    preempted = _task_processes(out)
    for pid in preempted:
        os.kill(pid, signal.SIGUSR2)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err
    result = _results(out)["full"]
    assert result["status"] == "ok" and "resuming" in Path(result["log"]).read_text()
    assert "Requeued job" in "".join(p.read_text() for p in (out / "slurm").glob("*/*_log.err"))


def test_a_failing_job_fails_alone(tmp_path, capsys):
    out = tmp_path / "run"
    code = main([*TINY, "--no-report", "--out", str(out), "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
                 "--no-train-eval", "--set", "linear_probe.lr=1e38", "linear_probe.classifier=linear",
                 "linear_probe.classifier_init=random", *LOCAL_SLURM, "--slurm-array-parallelism", "2"])
    assert code == 1
    results = _results(out)
    assert results["zero_shot"]["status"] == "ok" and results["linear_probe"]["status"] == "failed"
    assert "NonFiniteLossError" in results["linear_probe"]["error"]
    assert "1 of 2 jobs failed" in capsys.readouterr().err


def test_every_slurm_option_reaches_sbatch(tmp_path, monkeypatch):
    """A fake sbatch keeps the script submitit writes for the array."""
    kept = tmp_path / "kept.sh"
    _fake_slurm(tmp_path / "bin", f"cp \"$1\" {kept}\necho 'Submitted batch job 4242'", monkeypatch)
    args = build_parser().parse_args([
        "--backend", "slurm", "--out", str(tmp_path / "run"), "--slurm-partition", "gpu", "--slurm-account", "lab",
        "--slurm-time", "1-02:00:30", "--slurm-cpus-per-job", "6", "--slurm-mem", "64g",
        "--slurm-array-parallelism", "3", "--slurm-sbatch", "qos=high", "--slurm-sbatch", "exclusive"])
    settings = slurm_settings(args)
    tasks = make_executor(settings).submit_array([JobTask(make_job(), str(tmp_path / "run"))] * 5)
    assert [task.job_id for task in tasks] == [f"4242_{i}" for i in range(5)]
    script = kept.read_text().splitlines()
    for flag in ("--partition=gpu", "--account=lab", "--time=1561", "--gpus-per-node=1", "--cpus-per-task=6",
                 "--mem=64G", "--array=0-4%3", "--qos=high", "--exclusive", "--signal=USR2@90"):
        assert f"#SBATCH {flag}" in script
    assert settings.folder == str((tmp_path / "run").resolve() / "slurm" / "%j")


def test_a_dry_run_says_which_options_only_slurm_honours(tmp_path, caplog):
    check_cluster(SlurmSettings(folder=str(tmp_path / "slurm" / "%j"), cluster="local", partition="gpu", mem="8G"))
    assert "--slurm-partition, --slurm-mem take effect only on a SLURM cluster" in caplog.text
    assert (tmp_path / "slurm").is_dir()


def _exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("options, message", [
    (["--slurm-partition", "gpu"], "--slurm-partition is an option of --backend slurm: add --backend slurm or "
                                   "drop it"),
    (["--backend", "slurm", "--workers", "2"], "--workers is not an option of --backend slurm"),
    (["--backend", "slurm", "--slurm-gpus-per-job", "1"], "--device cpu runs on the CPU but --slurm-gpus-per-job 1"),
    (["--backend", "slurm", "--slurm-gpus-per-job", "2"], "a job trains on one GPU: 1, or 0 for CPU tasks"),
    (["--backend", "slurm", "--slurm-time", "25:61:00"], "--slurm-time: expected minutes or [D-]HH:MM:SS"),
    (["--backend", "slurm", "--slurm-time", "0"], "--slurm-time: must be at least 1 minute"),
    (["--backend", "slurm", "--slurm-mem", "lots"], "--slurm-mem: expected an amount like 64G"),
    (["--backend", "slurm", "--slurm-sbatch", "qos high"], "--slurm-sbatch: expected KEY=VALUE"),
    (["--backend", "slurm", "--slurm-sbatch", "partition=gpu"], "partition: use --slurm-partition"),
    (["--backend", "slurm", "--slurm-sbatch", "signal=B:USR1@60"], "signal: set by submitit"),
    (["--backend", "slurm", "--slurm-sbatch", "qos=a", "--slurm-sbatch", "qos=b"], "--slurm-sbatch qos is given "
                                                                                    "twice"),
    (["--backend", "slurm"], "--backend slurm: no `sbatch` on PATH; run ltbench on a SLURM login node"),
])
def test_bad_slurm_options_exit_2_before_training(options, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM here
    assert _exit([*TINY, "--out", str(tmp_path / "run"), "--regimes", "zero_shot", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "jobs").exists()


def test_without_submitit_the_install_line_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    assert main([*TINY, "--out", str(tmp_path), "--regimes", "zero_shot", *LOCAL_SLURM]) == 2
    assert "--backend slurm needs submitit: pip install -e '.[slurm]'" in capsys.readouterr().err


@pytest.mark.parametrize("options, workers", [
    ([], 8), (["--slurm-cpus-per-job", "4"], 4), (["--slurm-cpus-per-job", "4", "--loader-workers", "2"], 2),
    (["--slurm-gpus-per-job", "0"], 0),
])
def test_gpu_tasks_use_their_cpus_as_loader_workers(options, workers):
    from bench.cli import loader_workers

    args = build_parser().parse_args(["--backend", "slurm", *options])
    slots = ["cuda" if slurm_settings(args).gpus_per_job else "cpu"]
    assert loader_workers(args, slots) == workers


def _fake_slurm(bin_dir: Path, sbatch: str, monkeypatch) -> None:
    """`srun` and an `sbatch` running the shell lines `sbatch` first on PATH."""
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{sbatch}\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_an_array_sbatch_refuses_fails_each_job_with_its_message(tmp_path, monkeypatch):
    from bench.scheduler.slurm_backend import run_slurm

    _fake_slurm(tmp_path / "bin", "echo 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1", monkeypatch)
    jobs = [make_job(seed=0), make_job(seed=1)]
    outcomes = list(run_slurm(jobs, tmp_path / "run", SlurmSettings(folder=str(tmp_path / "run" / "slurm" / "%j"),
                                                                    partition="gpu")))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert outcomes[0].error == "submitting to slurm failed: sbatch: error: invalid partition specified: gpu"
    assert all((tmp_path / "run" / "jobs" / f"{job.job_id}.json").is_file() for job in jobs)
