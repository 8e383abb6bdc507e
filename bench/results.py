"""Run folder: one JSON per job written atomically, and a results.csv table of the current jobs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.io import StorageError, atomic_file, json_safe, storage_error, write_atomic
from bench.job_result import ROW_COLUMNS, JobOutcome, outcome_from_dict


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

    def load(self, job_id: str) -> JobOutcome | None:
        path = self.job_path(job_id)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return outcome_from_dict(data) if isinstance(data, dict) else None
        except (json.JSONDecodeError, TypeError):
            return None  # unreadable: treated as not done

    def is_finished(self, job_id: str) -> bool:
        result = self.load(job_id)
        return result is not None and result.status == "ok"

    def lock_path(self, job_id: str) -> Path:
        return self.run_dir / "locks" / f"{job_id}.lock"

    def save(self, outcome: JobOutcome) -> Path:
        path = self.job_path(outcome.job_id)
        write_atomic(path, json.dumps(json_safe(outcome.to_dict()), indent=1, allow_nan=False))
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

    def results(self) -> list[JobOutcome]:
        found = (self.load(p.stem) for p in sorted(self.jobs_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def write_table(self, current: set[str] | None = None) -> Path:
        """results.csv: one row per job, or per job of `current` (the manifest's current jobs: results of
        changed data are left out, as in the report, so that no mean over its rows mixes old data in)."""
        rows = [r.to_row() for r in self.results() if current is None or r.job_id in current]
        frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS)).sort_values(["dataset", "regime", "seed"],
                                                                         na_position="last")
        path = self.run_dir / "results.csv"
        write_atomic(path, frame.to_csv(index=False))
        return path
