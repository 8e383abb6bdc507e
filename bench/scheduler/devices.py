"""Device slots: one entry per job that may run at once (a GPU appears `jobs_per_gpu` times)."""
from __future__ import annotations

import os

import torch


def visible_gpus() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def parse_gpus(text: str | None) -> list[int] | None:
    """'0,1,3' -> [0, 1, 3]; None or 'all' -> None (every visible GPU); '' or 'none' -> [] (CPU)."""
    if text is None or text.strip().lower() == "all":
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus {text!r}: expected GPU indices like 0,1,2,3 (or 'all', or 'none')") from None
    if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
        raise ValueError(f"--gpus {text!r}: indices must be distinct and >= 0")
    return gpus


def device_slots(device: str, gpus: list[int] | None, jobs_per_gpu: int, cpu_workers: int,
                 available: list[int] | None = None) -> list[str]:
    """`cuda:N` once per job that may share GPU N, or `cpu` once per parallel CPU job.

    `available` (the visible GPUs) is a parameter so that tests can pretend to have GPUs.
    """
    if jobs_per_gpu < 1 or cpu_workers < 1:
        raise ValueError("--jobs-per-gpu and --workers must be >= 1")
    available = visible_gpus() if available is None else available
    use_gpu = device in ("auto", "cuda") and bool(available) and gpus != []
    if device.startswith("cuda:"):
        gpus, use_gpu = [int(device.split(":", 1)[1])], True
    if not use_gpu:
        if device == "cuda":
            raise ValueError("device 'cuda' requested but no GPU is visible; use --device cpu")
        return ["cpu"] * cpu_workers
    chosen = available if gpus is None else gpus
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise ValueError(f"--gpus asks for GPU {missing[0]} but the visible GPUs are {available or 'none'}")
    return [f"cuda:{g}" for g in chosen for _ in range(jobs_per_gpu)]


def loader_workers_per_job(slots: list[str], cores: int | None = None) -> int:
    """DataLoader processes per job on the local backend: none on CPU (the job's own threads use the cores);
    on GPU the usable cores shared among the jobs that run at once. One core decodes and crops about 150
    iNaturalist-size JPEGs/s (BENCHMARKS.md), so a fixed handful of workers would starve a fast GPU."""
    if all(slot == "cpu" for slot in slots):
        return 0
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, cores // len(slots))
