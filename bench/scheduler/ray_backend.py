"""The Ray backend: each job is a Ray task asking for one GPU (or one CPU on CPU runs); same result store.

Workers write results, logs and checkpoints under the run folder, which should be on a file system they
share with the driver; the driver also saves every returned result, so the table is complete either way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from bench.job_result import JobFailure, JobOutcome
from bench.results import RunStore
from bench.training import Job

from .execute import execute


def run_ray(jobs: list[Job], run_dir: str | Path, address: str | None, gpus_per_job: float,
            cpus_per_job: float = 1.0) -> Iterator[JobOutcome]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--backend ray needs Ray: pip install 'ltbench[ray]' (or pip install ray)") from None
    store = RunStore(run_dir)
    if not ray.is_initialized():
        passed = {k: v for k, v in os.environ.items() if k in ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE")}
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": passed})
    task = ray.remote(num_gpus=gpus_per_job, num_cpus=cpus_per_job, max_retries=0)(execute)
    pending = {task.remote(job, str(store.run_dir)): job for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # the worker died (node lost, killed): record it like any failure
            result = JobFailure.of(job, f"Ray task failed: {type(exc).__name__}: {exc}")
        try:
            store.save(result)
        except OSError as exc:  # the worker may have saved it; either way the run goes on
            result.save_error = result.save_error or str(exc)
        yield result
