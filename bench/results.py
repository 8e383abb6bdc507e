"""Run folder: one JSON per job written atomically, and a results.csv table of all jobs."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

STORAGE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                  errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
                  errno.EEXIST: "a part of the path is a file, not a folder"}


class StorageError(OSError):
    """The run folder cannot be written (full disk, read-only, no permission); the message names the folder."""


def _storage_cause(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (torch.save wraps a full disk as 'enforce fail at inline_container.cc')."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def storage_error(path: Path, exc: BaseException) -> StorageError | None:
    cause = _storage_cause(exc)
    if cause is None:
        return None
    return StorageError(cause.errno, f"cannot write {path}: {STORAGE_ERRORS[cause.errno]} ({cause.strerror}); "
                                     f"free space or fix the permissions of {Path(path).parent}, or choose "
                                     f"another --out")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb"):
    """Write to a temporary file in the same folder, fsync, then rename: readers see the old file or the new one,
    never a half-written one, whenever the writer is killed. A full disk or a folder that cannot be written
    raises StorageError naming the folder."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        translated = storage_error(path, exc) if not isinstance(exc, StorageError) else None
        if translated is not None:
            raise translated from exc
        raise


def write_atomic(path: Path, text: str) -> None:
    with atomic_file(path, "w") as fh:
        fh.write(text)


def json_safe(value):
    """`value` with every NaN or infinite float written as a string ("nan", "inf", "-inf"): JSON has no such
    numbers, and a failure record (a NaN loss, lr=inf) must always be saved."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def recipe_id(config: dict) -> str:
    """A job's config without its seed, hashed: the seeds of one recipe share it, and only they may be averaged."""
    canonical = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def table_row(result: dict) -> dict:
    """One flat row per job; an empty group stays empty (None), never 0 or NaN-as-a-number."""
    config = result.get("config", {})
    row = {
        "job_id": result.get("job_id"),
        "status": result.get("status"),
        "dataset": config.get("dataset"),
        "regime": config.get("regime"),
        "seed": config.get("seed"),
        "recipe_id": recipe_id(config) if config else None,  # rows that share it may be averaged over seeds
        "protocol": config.get("protocol"),
        "model": config.get("model"),
        "pretrained": config.get("pretrained"),
        "activation": result.get("activation"),
    }
    test = result.get("metrics", {}).get("test", {})
    train = result.get("metrics", {}).get("train", {})
    for key in ("top1", "many", "medium", "few"):
        row[key] = test.get(key)
    for key in ("top1", "many", "medium", "few"):
        row[f"train_{key}"] = train.get(key)
    params = result.get("params", {})
    timings = result.get("timings", {})
    row.update({
        "trainable_params": params.get("trainable"),
        "trainable_pct": params.get("trainable_pct"),
        "epochs": result.get("epochs"),
        "train_s": timings.get("train_s"),
        "total_s": timings.get("total_s"),
        "split_fingerprint": result.get("split_fingerprint"),
        "data_fingerprint": config.get("data_fingerprint"),
        "error": result.get("error"),
    })
    return row


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.jobs_dir = self.run_dir / "jobs"

    def job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def log_path(self, job_id: str) -> Path:
        return self.run_dir / "logs" / f"{job_id}.log"

    def stats_path(self, job_id: str) -> Path:
        return self.run_dir / "stats" / f"{job_id}.npz"

    def checkpoint_path(self, job_id: str) -> Path:
        return self.run_dir / "checkpoints" / f"{job_id}.pt"

    def load(self, job_id: str) -> dict | None:
        path = self.job_path(job_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None  # unreadable: treated as not done

    def is_finished(self, job_id: str) -> bool:
        result = self.load(job_id)
        return result is not None and result.get("status") == "ok"

    def lock_path(self, job_id: str) -> Path:
        return self.run_dir / "locks" / f"{job_id}.lock"

    def save(self, result: dict) -> Path:
        path = self.job_path(result["job_id"])
        write_atomic(path, json.dumps(json_safe(result), indent=1, allow_nan=False))
        return path

    def save_statistics(self, job_id: str, stats: dict) -> str:
        """The job's per-class statistics as `stats/<job id>.npz` (class means in float16); its path relative
        to the run folder, for the result."""
        path = self.stats_path(job_id)
        with atomic_file(path) as fh:
            np.savez_compressed(fh, **{k: (v.astype(np.float16) if k.endswith("means") else v)
                                       for k, v in stats.items()})
        return str(path.relative_to(self.run_dir))

    def check_writable(self) -> None:
        """Create the run folder and write a probe file, so that a bad --out stops before any training."""
        probe = self.run_dir / f".write-probe-{os.getpid()}"
        try:
            write_atomic(probe, "ltbench")
            probe.unlink()
        except OSError as exc:
            raise storage_error(probe, exc) or StorageError(
                exc.errno, f"--out {self.run_dir}: cannot write there ({exc}); choose another folder") from exc
        for stale in (self.run_dir / "pending").glob("*.pkl"):  # jobs handed to children by earlier versions
            stale.unlink(missing_ok=True)

    def results(self) -> list[dict]:
        found = (self.load(p.stem) for p in sorted(self.jobs_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def write_table(self, current: set[str] | None = None) -> Path:
        """results.csv: one row per job, or per job of `current` (the manifest's current jobs: results of
        changed data are left out, as in the report, so that no mean over its rows mixes old data in)."""
        rows = [table_row(r) for r in self.results() if current is None or r.get("job_id") in current]
        frame = pd.DataFrame(rows).sort_values(["dataset", "regime", "seed"], na_position="last") if rows \
            else pd.DataFrame()
        path = self.run_dir / "results.csv"
        write_atomic(path, frame.to_csv(index=False))
        return path
