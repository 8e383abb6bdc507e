"""One job, whatever the backend: its own log file, one out-of-memory retry, failures recorded, result saved."""
from __future__ import annotations

import dataclasses
import gc
import logging
import traceback
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from bench.io import storage_error
from bench.job_result import JobFailure, JobOutcome, JobResult
from bench.messages import first_line
from bench.results import RunStore
from bench.training import Job

log = logging.getLogger(__name__)
LOGGERS = ("ltbench", "bench", "regimes")


def _halved(job: Job) -> Job:
    runtime = job.runtime
    micro = (runtime.micro_batch_size or job.recipe.batch_size) // 2
    return dataclasses.replace(job, runtime=dataclasses.replace(
        runtime, micro_batch_size=micro, eval_batch_size=max(1, runtime.eval_batch_size // 2)))


def train_with_oom_retry(job: Job) -> JobResult:
    """Out of GPU memory: retry once with half the micro-batch (gradient accumulation keeps the batch)."""
    from bench.training.engine import train  # heavy imports only where a job runs

    try:
        return train(job)
    except torch.cuda.OutOfMemoryError as exc:
        retry = _halved(job)
        if retry.runtime.micro_batch_size < 1:
            raise
        log.warning("%s: out of memory (%s); retrying with micro-batch %d", job.label, first_line(str(exc)),
                    retry.runtime.micro_batch_size)
        del exc
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        result = train(retry)
        result.oom_retry = {"micro_batch_size": retry.runtime.micro_batch_size,
                            "eval_batch_size": retry.runtime.eval_batch_size}
        return result


def _failure(job: Job, exc: BaseException, log_path: Path) -> JobFailure:
    """The error in one line (type and first line of the message: torch's C++ errors carry their backtrace in
    it); the whole message is in the traceback."""
    error = f"{type(exc).__name__}: {first_line(str(exc))}"
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        error = (f"out of GPU memory even with micro-batch {_halved(job).runtime.micro_batch_size}; "
                 f"use a smaller --micro-batch-size and --eval-batch-size ({type(exc).__name__})")
    return JobFailure.of(job, error, traceback=traceback.format_exc(), log=str(log_path))


def execute(job: Job, run_dir: str | Path) -> JobOutcome:
    """Train and evaluate `job`; save its result (or its failure) atomically under `run_dir` and return it.

    A per-job lock makes two runs on one folder train a job once: the second waits, then takes the first's
    result. A result that cannot be saved (full disk) comes back as a failure, so the run goes on."""
    store = RunStore(run_dir)
    lock = FileLock(str(store.lock_path(job.job_id)))
    try:
        store.lock_path(job.job_id).parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.warning("%s: another ltbench process is running this job; waiting for its result", job.label)
            lock.acquire()
    except OSError as exc:
        return JobFailure.of(job, str(storage_error(store.lock_path(job.job_id), exc) or exc))
    try:
        if not job.runtime.force and store.is_finished(job.job_id):
            done = store.load(job.job_id)
            if done is not None:  # None: a file it refers to is damaged, so it is not done after all
                return done
        return _run_and_save(job, store)
    finally:
        lock.release()


def save_in_driver(outcome: JobOutcome, store: RunStore) -> JobOutcome:
    """Save an outcome the driver holds (one a remote task returned, or a failure it made for a task that died);
    a store that cannot take it (a full disk) is noted on the outcome, and the run goes on."""
    try:
        store.save(outcome)
    except OSError as exc:  # the task may have saved it; either way the summary says it
        outcome.save_error = outcome.save_error or str(exc)
    return outcome


def _log_failure(handler: logging.Handler, job: Job, exc: Exception) -> None:
    """The failure with its traceback in the job's log file only: the driver prints one line for it."""
    handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s failed", (job.label,),
                                  (type(exc), exc, exc.__traceback__)))


def _run_and_save(job: Job, store: RunStore) -> JobOutcome:
    log_path = store.log_path(job.job_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:  # the file always gets INFO, whatever the console shows
            lg.setLevel(logging.INFO)
    job = dataclasses.replace(job, runtime=dataclasses.replace(job.runtime, run_dir=str(store.run_dir)))
    try:
        result = train_with_oom_retry(job)
        result.log = str(log_path)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        _log_failure(handler, job, exc)
        result = _failure(job, exc, log_path)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()
    try:
        store.save(result)
    except OSError as exc:  # kept in memory: the summary and exit code say it; the rerun trains it again
        log.error("%s: cannot save its result: %s", job.label, exc)
        return JobFailure.of(job, f"result not saved: {exc}", traceback=traceback.format_exc())
    if result.status == "ok":
        store.checkpoint_path(job.job_id).unlink(missing_ok=True)
    return result
