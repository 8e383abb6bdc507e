"""Where and how a job computes: device, precision and autocast, seeds, memory."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {name!r}; valid: auto, fp32, bf16, fp16")
    if name != "fp32" and device.type != "cuda":
        raise ValueError(f"mixed precision {name} needs a GPU; use --precision fp32 on {device}")
    return name


def seed_everything(seed: int) -> None:
    """Python, numpy and torch from one seed; numpy takes 32 bits, so larger derived seeds wrap (every
    seed below 2^32 seeds numpy exactly as before)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_factory(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def epoch_seed(seed: int, epoch: int) -> int:
    """Every epoch reseeds order and augmentation, so a run resumed from a checkpoint matches an unbroken one."""
    return seed * 100_003 + epoch


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by this process, or on CPU its peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
