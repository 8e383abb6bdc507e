"""The local backend: jobs one after another in this process, or in parallel over device slots with joblib.

In parallel, joblib threads take a device slot from a queue and run one job each in a child process that
sees only its GPU (CUDA_VISIBLE_DEVICES), so no device ever holds more jobs than it has slots, and a crash
of one job cannot take the others down.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import queue
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

from joblib import Parallel, delayed

from bench.job_result import JobFailure, JobOutcome
from bench.results import RunStore
from bench.training import Job

from .execute import execute
from .signals import track, untrack

Launch = Callable[[Job, str, int], JobOutcome]  # (job, device slot, slot index) -> result
INTERRUPTED = (130, -signal.SIGTERM, -signal.SIGINT)  # how a child stopped by the driver exits


def modified_ns(path: Path) -> int | None:
    """When `path` last changed (None: it is not there): a job's JSON changed by its child is its new outcome."""
    return path.stat().st_mtime_ns if path.exists() else None


def saved_since(store: RunStore, job_id: str, before: int | None) -> JobOutcome | None:
    """The outcome a job's own process saved after its JSON's stamp `before` (taken at launch), as the JSON holds
    it (the driver keeps only its row, so the per-class arrays are not read back); None if it saved none."""
    return store.load(job_id, full=False) if modified_ns(store.job_path(job_id)) != before else None


def run_in_child(job: Job, slot: str, index: int, run_dir: str, threads: int) -> JobOutcome:
    """Run `job` in a fresh Python process pinned to `slot`, in its own process group, dying with this one;
    the job goes in through its standard input and its result comes back through the store."""
    store = RunStore(run_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if slot.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = slot.split(":", 1)[1]
        slot = "cuda:0"
    job = dataclasses.replace(job, runtime=dataclasses.replace(job.runtime, device=slot, progress_position=index + 1))
    before = modified_ns(store.job_path(job.job_id))
    process = subprocess.Popen([sys.executable, "-m", "bench.scheduler.worker", str(store.run_dir), str(os.getpid())],
                               env=env, stdin=subprocess.PIPE, start_new_session=True)
    track(process)
    try:
        with process.stdin:
            pickle.dump(job, process.stdin)
        code = process.wait()
    finally:
        untrack(process)
    result = saved_since(store, job.job_id, before)
    if result is None and code in INTERRUPTED:  # the run was stopped: nothing failed, the rerun resumes it
        return JobFailure.of(job, "interrupted", status="interrupted")
    if result is None:  # killed before it could record anything (segfault, OOM killer)
        result = JobFailure.of(job, f"job process exited with code {code} before recording a result",
                               log=str(store.log_path(job.job_id)))
        store.save(result)
    return result


def run_local(jobs: list[Job], run_dir: str | Path, slots: list[str], launch: Launch | None = None
              ) -> Iterator[JobOutcome]:
    """Yield each job's result as it finishes. One slot: in this process, in order. More: in parallel."""
    run_dir = str(run_dir)
    if len(slots) == 1 and launch is None:
        for job in jobs:
            yield execute(dataclasses.replace(job, runtime=dataclasses.replace(job.runtime, device=slots[0])),
                          run_dir)
        return
    if launch is None:
        threads = max(1, (os.cpu_count() or 1) // len(slots))
        launch = lambda job, slot, index: run_in_child(job, slot, index, run_dir, threads)  # noqa: E731
    free: queue.Queue[tuple[int, str]] = queue.Queue()
    for index, slot in enumerate(slots):
        free.put((index, slot))

    def on_a_free_slot(job: Job) -> JobOutcome:
        index, slot = free.get()
        try:
            return launch(job, slot, index)
        finally:
            free.put((index, slot))

    parallel = Parallel(n_jobs=len(slots), backend="threading", return_as="generator_unordered")
    yield from parallel(delayed(on_a_free_slot)(job) for job in jobs)
