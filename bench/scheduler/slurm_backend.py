"""The SLURM backend through submitit: the jobs go to the cluster as one job array, one array task per job, each
running `execute` (the same lock, resume, failure record and saving as the local backend); the driver yields
each outcome as its task ends.

Each task is checkpointable: when its time limit nears or SLURM preempts it, submitit (signalled with SIGUSR2)
requeues it, and the requeued task resumes from the job's last epoch checkpoint. Tasks write results, logs and
checkpoints under the run folder, which must be on a file system the nodes share with the driver.
`--slurm-cluster local` runs the same tasks as processes on this machine through submitit's LocalExecutor: a
dry run of a SLURM study.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.job_result import JobFailure, JobOutcome
from bench.messages import first_line
from bench.results import RunStore
from bench.training import Job

from .execute import execute, save_in_driver
from .local import modified_ns, saved_since

log = logging.getLogger(__name__)
INSTALL = "pip install -e '.[slurm]'"
CLUSTERS = ("slurm", "local")
DEFAULT_TIME_MIN = 24 * 60
GPU_TASK_CPUS = 8  # cores a GPU task asks for by default (its DataLoader workers), as for Ray
SUBMITIT_ARRAY_PARALLELISM = 256  # submitit's default for an array's tasks at once
POLL_S = {"slurm": 10.0, "local": 1.0}  # a SLURM poll stats every task's result file on the shared disk
SLURM_ONLY = {"partition": "--slurm-partition", "account": "--slurm-account", "mem": "--slurm-mem",
              "sbatch": "--slurm-sbatch"}  # what a local dry run cannot honour


class SlurmError(ValueError):
    """The SLURM backend cannot run (submitit missing, no SLURM here, a log folder that cannot be made); the
    message says how to fix it."""


@dataclass(frozen=True)
class SlurmSettings:
    """What each array task asks SLURM for, and where submitit keeps its pickles and logs (%j: the job id)."""

    folder: str
    cluster: str = "slurm"  # slurm | local (submitit's LocalExecutor on this machine)
    partition: str | None = None
    account: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    gpus_per_job: int = 1
    cpus_per_job: int = GPU_TASK_CPUS
    mem: str | None = None  # SLURM's --mem, e.g. 64G
    array_parallelism: int | None = None  # tasks at once (None: submitit's default; 1 locally)
    sbatch: tuple[tuple[str, str | bool], ...] = ()  # extra sbatch flags (True: a flag without a value)

    @property
    def at_once(self) -> int:
        if self.array_parallelism is not None:
            return self.array_parallelism
        return SUBMITIT_ARRAY_PARALLELISM if self.cluster == "slurm" else 1

    def unused_locally(self) -> list[str]:
        """The options given that only a SLURM cluster honours."""
        return [option for name, option in SLURM_ONLY.items() if getattr(self, name)]


@dataclass(frozen=True)
class JobTask:
    """One array task: `execute` one job. Checkpointable (submitit calls `checkpoint` on SIGUSR2 and requeues
    what it returns): nothing to save here, the job writes an epoch checkpoint after every epoch itself."""

    job: Job
    run_dir: str

    def __call__(self) -> JobOutcome:
        return execute(self.job, self.run_dir)

    def checkpoint(self):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SlurmError(f"--backend slurm needs submitit: {INSTALL} (or pip install submitit)") from None
    return submitit


def check_cluster(settings: SlurmSettings) -> None:
    """Before any training: submitit is installed, SLURM's commands are here (for a real cluster), and the log
    folder can be made. A dry run names the options it cannot honour."""
    _submitit()
    if settings.cluster == "slurm":
        missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
        if missing:
            raise SlurmError(f"--backend slurm: no `{missing[0]}` on PATH; run ltbench on a SLURM login node (or "
                             f"load the cluster's slurm module first), or add --slurm-cluster local for a dry run "
                             f"on this machine")
    else:
        unused = settings.unused_locally()
        if unused:
            log.warning("--slurm-cluster local runs the tasks on this machine: %s take effect only on a SLURM "
                        "cluster", ", ".join(unused))
    folder = Path(settings.folder.split("%", 1)[0])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlurmError(f"--slurm-folder {settings.folder}: cannot create {folder} ({exc.strerror or exc}); "
                         f"choose a folder on a file system the nodes share") from None


def make_executor(settings: SlurmSettings):
    """A submitit executor whose tasks ask for what `settings` say."""
    submitit = _submitit()
    if settings.cluster == "local":
        executor = submitit.LocalExecutor(settings.folder)
        executor.update_parameters(timeout_min=settings.time_min, gpus_per_node=settings.gpus_per_job)
        return executor
    executor = submitit.SlurmExecutor(settings.folder)
    asked = {"partition": settings.partition, "account": settings.account, "mem": settings.mem}
    executor.update_parameters(
        job_name="ltbench", time=settings.time_min, gpus_per_node=settings.gpus_per_job,
        cpus_per_task=settings.cpus_per_job, array_parallelism=settings.at_once,
        additional_parameters=dict(settings.sbatch), **{k: v for k, v in asked.items() if v is not None})
    return executor


def _outcome(job: Job, task, store: RunStore, before: int | None, cluster: str) -> JobOutcome:
    """The task's returned outcome; else what it saved before it died; else a failure naming its log."""
    try:
        return task.result()
    except Exception as exc:  # noqa: BLE001 - submitit: the task died (killed, node lost) or raised
        ended = exc
    saved = saved_since(store, job.job_id, before)  # it saved its outcome, then died
    if saved is not None:
        return saved
    lines = str(ended).strip().splitlines() or [type(ended).__name__]
    state = f" (state {task.state})" if cluster == "slurm" else ""
    if isinstance(ended, _submitit().core.utils.FailedJobError):  # the task raised: its traceback's last line
        error = f"{cluster} task {task.job_id} raised {lines[-1]}; its log: {task.paths.stderr}"
    else:
        error = f"{cluster} task {task.job_id} ended without a result{state}; its log: {task.paths.stderr}"
    return save_in_driver(JobFailure.of(job, error, traceback=str(ended), log=str(store.log_path(job.job_id))),
                          store)


def _cancel(tasks: list, cluster: str) -> None:
    """Stop unfinished tasks (the driver was interrupted); their epoch checkpoints stay for the rerun."""
    if cluster == "slurm":  # one scancel for the array, not one per task
        arrays = sorted({task.job_id.split("_", 1)[0] for task in tasks})
        if arrays:
            subprocess.run(["scancel", *arrays], check=False, capture_output=True)
        return
    for task in tasks:
        task.cancel(check=False)


def run_slurm(jobs: list[Job], run_dir: str | Path, settings: SlurmSettings) -> Iterator[JobOutcome]:
    """Submit every job as a task of one array (locally: at most `at_once` tasks at a time, as SLURM would
    run them) and yield each outcome as its task ends. Interrupted, it cancels the tasks still queued or
    running."""
    store = RunStore(run_dir)
    executor = make_executor(settings)
    waiting = list(jobs)
    running: dict = {}  # submitit job -> (ltbench job, its JSON's modification time at submission)
    batch = len(jobs) if settings.cluster == "slurm" else settings.at_once  # SLURM throttles an array itself
    try:
        while waiting or running:
            free = batch - len(running)
            if waiting and free > 0:
                submitted, waiting = waiting[:free], waiting[free:]
                before = [modified_ns(store.job_path(job.job_id)) for job in submitted]
                try:
                    tasks = executor.submit_array([JobTask(job, str(store.run_dir)) for job in submitted])
                except Exception as exc:  # noqa: BLE001 - sbatch refused the array (a partition, a flag)
                    error = f"submitting to {settings.cluster} failed: {first_line(str(exc)) or type(exc).__name__}"
                    for job in submitted:
                        yield save_in_driver(JobFailure.of(job, error, traceback=str(exc)), store)
                    continue
                for task, job, stamp in zip(tasks, submitted, before):
                    if settings.cluster == "local":  # a local disk shows a result at once; submitit would wait
                        task._results_timeout_s = 0  # 15 s for a shared file system to show a missing one
                    running[task] = (job, stamp)
                    log.info("%s: submitit task %s (log: %s)", job.label, task.job_id, task.paths.stderr)
            ended = [task for task in running if task.done()]
            for task in ended:
                job, stamp = running.pop(task)
                yield _outcome(job, task, store, stamp, settings.cluster)
            if not ended:
                time.sleep(POLL_S[settings.cluster])
    finally:
        _cancel(list(running), settings.cluster)
