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
    """`cuda:N` once per job that may share GPU N, or `cpu` once per parallel CPU job. A device or GPU that
    is not there is an error naming the option, never a silent fall-back to the CPU.

    `available` (the visible GPUs) is a parameter so that tests can pretend to have GPUs.
    """
    if jobs_per_gpu < 1 or cpu_workers < 1:
        raise ValueError("--jobs-per-gpu and --workers must be >= 1")
    available = visible_gpus() if available is None else available
    seen = ", ".join(map(str, available)) or "none"
    if device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit():
            raise ValueError(f"--device {device!r}: expected cuda:N with a GPU index N")
        if int(index) not in available:
            raise ValueError(f"--device {device}: there is no GPU {index} on this machine (visible GPUs: {seen}); "
                             f"use --device cpu or one of the visible GPUs")
        if gpus:
            raise ValueError(f"--device {device} and --gpus both choose GPUs; give one of them")
        gpus = [int(index)]
    elif device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"unknown --device {device!r}; valid: auto, cpu, cuda, cuda:N")
    if device == "cpu":
        if gpus:
            raise ValueError("--gpus chooses GPUs but --device cpu runs on the CPU; drop one of them")
        return ["cpu"] * cpu_workers
    if not available:
        if device == "cuda" or device.startswith("cuda:"):
            raise ValueError(f"--device {device}: no GPU is visible on this machine; use --device cpu")
        if gpus:
            raise ValueError(f"--gpus {','.join(map(str, gpus))}: no GPU is visible on this machine; "
                             f"drop --gpus to run on the CPU")
        return ["cpu"] * cpu_workers
    if gpus == []:
        return ["cpu"] * cpu_workers
    chosen = available if gpus is None else gpus
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise ValueError(f"--gpus asks for GPU {missing[0]} but the visible GPUs are {seen}")
    return [f"cuda:{g}" for g in chosen for _ in range(jobs_per_gpu)]


def loader_workers_per_job(slots: list[str], cores: int | None = None) -> int:
    """DataLoader processes per job on the local backend: none on CPU (the job's own threads use the cores);
    on GPU the usable cores shared among the jobs that run at once. One core decodes and crops about 150
    iNaturalist-size JPEGs/s (BENCHMARKS.md), so a fixed handful of workers would starve a fast GPU."""
    if all(slot == "cpu" for slot in slots):
        return 0
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, cores // len(slots))
