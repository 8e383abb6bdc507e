"""`JobContext`: where one job computes and keeps things, resolved once from its Runtime."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from bench.cache import DiskCache
from bench.results import RunStore

from .job import Job
from .precision import resolve_device, resolve_precision


def default_loader_workers(device: torch.device) -> int:
    """DataLoader processes when neither the CLI nor the caller chose: none on CPU, up to 8 on a GPU."""
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class JobContext:
    job: Job
    device: torch.device
    precision: str  # fp32 | bf16 | fp16, resolved for the device
    workers: int  # DataLoader processes
    store: RunStore | None  # the run folder (None: nothing is written)
    cache: DiskCache | None  # the run's shared cache of text embeddings and frozen features

    @classmethod
    def create(cls, job: Job) -> "JobContext":
        """Resolve the job's device, precision and workers, and set the device up: deterministic kernels on
        CPU, the job's GPU current and its peak-memory counter reset."""
        runtime = job.runtime
        device = resolve_device(runtime.device)
        precision = resolve_precision(runtime.precision, device)
        workers = runtime.loader_workers if runtime.loader_workers is not None else default_loader_workers(device)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            if device.index is not None:
                torch.cuda.set_device(device)
            torch.cuda.reset_peak_memory_stats(device)
        store = RunStore(runtime.run_dir) if runtime.run_dir else None
        cache = DiskCache(store.run_dir / "cache") if store else None
        return cls(job, device, precision, workers, store, cache)
