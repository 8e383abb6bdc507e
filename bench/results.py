"""Run folder: one JSON per job written atomically, and a results.csv table of all jobs."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb"):
    """Write to a temporary file in the same folder, fsync, then rename: readers see the old file or the new one,
    never a half-written one, whenever the writer is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    with atomic_file(path, "w") as fh:
        fh.write(text)


def table_row(result: dict) -> dict:
    """One flat row per job; an empty group stays empty (None), never 0 or NaN-as-a-number."""
    config = result.get("config", {})
    row = {
        "job_id": result.get("job_id"),
        "status": result.get("status"),
        "dataset": config.get("dataset"),
        "regime": config.get("regime"),
        "seed": config.get("seed"),
        "model": config.get("model"),
        "pretrained": config.get("pretrained"),
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

    def save(self, result: dict) -> Path:
        path = self.job_path(result["job_id"])
        write_atomic(path, json.dumps(result, indent=1, allow_nan=False))
        return path

    def results(self) -> list[dict]:
        found = (self.load(p.stem) for p in sorted(self.jobs_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def write_table(self) -> Path:
        rows = [table_row(r) for r in self.results()]
        frame = pd.DataFrame(rows).sort_values(["dataset", "regime", "seed"], na_position="last") if rows \
            else pd.DataFrame()
        path = self.run_dir / "results.csv"
        write_atomic(path, frame.to_csv(index=False))
        return path
