"""Run folder: one JSON per job written atomically, and a results.csv table of the current jobs.

What `save` writes for a job (every file atomically):
- `jobs/<id>.json`: the result (compact JSON). Per-class lists longer than INLINE_LIMIT entries (per-class
  accuracies and confusion counts of each split, ARRAY_KEYS) go to `arrays/<id>.npz` instead (the JSON's
  `arrays` names the file, its keys and its size), and a data-set summary with such lists (class names, training
  counts) goes once per run to `datasets/<hash>.json` (the JSON's `dataset` keeps its scalars and names the
  file). `outcome_from_dict(data, run_dir)`, `load` and reports.load put them back.
- `rows/<id>.json`: the job's JobRow (status, label, error, results.csv row) with the size and modification
  time of the JSON it was made from, so that the driver and results.csv need not parse whole results.
`save_statistics` writes `stats/<id>.npz` (the per-class feature statistics) and the test split's class means in
float16 to `means/<hash>.npy`, one file per distinct content (jobs of a frozen tower share it).

Folders written before (arrays inline, indented JSON, both class means in the statistics file) read the same.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Collection

import numpy as np
import pandas as pd

from bench.io import StorageError, atomic_file, json_safe, storage_error, write_atomic
from bench.job_result import ROW_COLUMNS, JobOutcome, JobRow, outcome_from_dict
from bench.messages import first_line

INLINE_LIMIT = 1024  # a per-class list with more entries than this leaves the job's JSON
ARRAY_KEYS = ("per_class_acc", "confusion")  # per split of the metrics
MEANS_KEY = "test_means"  # the class means kept (the report's similarity heatmap); train_means are not stored
MEANS_FILE_KEY = "test_means_file"  # in stats/<id>.npz: the shared file holding them
CLASS_MEANS = ("train_means", MEANS_KEY, MEANS_FILE_KEY)  # K×D class means in a statistics file, or where they are
_DATASET_CACHE: dict[tuple, dict] = {}  # shared data-set summaries read, by (path, size, mtime)


class ResultFileError(ValueError):
    """A file a result refers to (its arrays, its data-set summary, its class means) is missing or damaged;
    `path` names it."""

    def __init__(self, message: str, path: str | Path):
        super().__init__(message)
        self.path = Path(path)

    @classmethod
    def reading(cls, what: str, path: Path, exc: BaseException) -> "ResultFileError":
        """The error of `what` at `path` that could not be read because of `exc`, in one line."""
        return cls(f"the {what} {path} {'is missing' if isinstance(exc, FileNotFoundError) else _damage(exc)}",
                   path)


def _damage(exc: BaseException) -> str:
    """What is wrong with a file that numpy or json could not read, in words. numpy's own message for a file
    that is not an array file suggests allow_pickle, which must never be used on a run folder."""
    if isinstance(exc, ValueError) and "pickle" in str(exc):
        return "is damaged (not a NumPy array file)"
    return f"is damaged ({type(exc).__name__}: {first_line(str(exc))})"


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _pack(key: str, values) -> np.ndarray | None:
    """`values` as an array when it is long enough to leave the JSON and comes back exactly (None otherwise):
    per-class accuracies (floats or None, stored as float64 with NaN for None) or confusion triples (int64)."""
    if not isinstance(values, list) or len(values) <= INLINE_LIMIT:
        return None
    if key == "per_class_acc":
        if not all(v is None or (type(v) is float and math.isfinite(v)) for v in values):
            return None
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    if key == "confusion":
        try:
            array = np.array(values)
        except (ValueError, OverflowError):
            return None
        if array.ndim != 2 or array.shape[1] != 3 or array.dtype.kind != "i":
            return None
        return array.astype(np.int64)
    return None


def _unpack(key: str, array: np.ndarray) -> list:
    if key.endswith("per_class_acc"):
        return [None if math.isnan(v) else v for v in array.tolist()]
    return array.tolist()


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _stamp(stat: os.stat_result) -> list[int]:
    """What tells one version of a job's JSON from another without reading it: size, modification time and
    inode (every atomic write makes a new file)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _files_intact(run_dir: Path, files: dict | None) -> bool:
    """Every file a result refers to is there with the size it had when the result was saved."""
    return all(_file_size(run_dir / name) == size for name, size in (files or {}).items())


def referenced_files(data: dict) -> dict[str, int]:
    """The files a saved result (its JSON object) refers to, with their sizes when saved."""
    files = {}
    arrays = data.get("arrays")
    if isinstance(arrays, dict) and arrays.get("file"):
        files[arrays["file"]] = arrays.get("bytes")
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset.get("file"):
        files[dataset["file"]] = dataset.get("bytes")
    return {name: size for name, size in files.items() if size is not None}


def _read_dataset(path: Path) -> dict:
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _DATASET_CACHE:
            summary = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
            if len(_DATASET_CACHE) > 16:
                _DATASET_CACHE.clear()
            _DATASET_CACHE[key] = summary
        return _DATASET_CACHE[key]
    except (OSError, ValueError) as exc:
        raise ResultFileError.reading("data-set summary", path, exc) from exc


def _read_arrays(path: Path, keys: list[str], what: str = "per-class arrays") -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in keys}
    except Exception as exc:  # a truncated or damaged zip raises several kinds of error
        raise ResultFileError.reading(what, path, exc) from exc


def restore(data: dict, run_dir: str | Path) -> dict:
    """A saved result's JSON object with the per-class arrays and the data-set summary that RunStore moved to
    files of their own put back (a new object; `data` is not changed). Raises ResultFileError naming a file that
    is missing or damaged. Objects that hold everything inline come back as they are."""
    run_dir = Path(run_dir)
    arrays, dataset = data.get("arrays"), data.get("dataset")
    moved_dataset = isinstance(dataset, dict) and dataset.get("file")
    if not arrays and not moved_dataset:
        return data
    data = dict(data)
    if arrays:
        values = _read_arrays(run_dir / arrays["file"], list(arrays.get("keys") or ()))
        metrics = {split: dict(m) if isinstance(m, dict) else m for split, m in (data.get("metrics") or {}).items()}
        for name, array in values.items():
            _, split, key = name.split(".", 2)
            metrics.setdefault(split, {})[key] = _unpack(key, array)
        data["metrics"] = metrics
        data["arrays"] = None
    if moved_dataset:
        data["dataset"] = _read_dataset(run_dir / dataset["file"])
    return data


def read_statistics(run_dir: str | Path, file: str, keys: Collection[str] | None = None,
                    class_means: bool = True) -> dict[str, np.ndarray] | None:
    """The per-class statistics of `stats/<id>.npz`, or those of `keys` (None when the file is not there), with
    the shared class means put back as `test_means` (a read-only memory map: the report reads a few rows);
    without `class_means`, no class means are read (nor their file opened)."""
    run_dir = Path(run_dir)
    path = run_dir / file
    if not path.is_file():
        return None
    means_wanted = class_means and (keys is None or MEANS_KEY in keys)

    def wanted(key: str) -> bool:
        if key == MEANS_FILE_KEY:
            return means_wanted
        return (keys is None or key in keys) and (class_means or key not in CLASS_MEANS)

    try:
        with np.load(path, allow_pickle=False) as z:
            stats = {k: z[k] for k in z.files if wanted(k)}
    except Exception as exc:
        raise ResultFileError.reading("feature statistics", path, exc) from exc
    shared = stats.pop(MEANS_FILE_KEY, None)
    if shared is not None:
        means = run_dir / str(shared)
        try:
            stats[MEANS_KEY] = np.load(means, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise ResultFileError.reading("class means", means, exc) from exc
    return stats


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.jobs_dir = self.run_dir / "jobs"

    def job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def row_path(self, job_id: str) -> Path:
        return self.run_dir / "rows" / f"{job_id}.json"

    def arrays_path(self, job_id: str) -> Path:
        return self.run_dir / "arrays" / f"{job_id}.npz"

    def log_path(self, job_id: str) -> Path:
        return self.run_dir / "logs" / f"{job_id}.log"

    def stats_path(self, job_id: str) -> Path:
        return self.run_dir / "stats" / f"{job_id}.npz"

    def checkpoint_path(self, job_id: str) -> Path:
        return self.run_dir / "checkpoints" / f"{job_id}.pt"

    def lock_path(self, job_id: str) -> Path:
        return self.run_dir / "locks" / f"{job_id}.lock"

    def weights_path(self, job_id: str) -> Path:
        return self.run_dir / "weights" / f"{job_id}.safetensors"

    def features_path(self, job_id: str) -> Path:
        return self.run_dir / "features" / f"{job_id}.safetensors"

    def predictions_path(self, job_id: str) -> Path:
        return self.run_dir / "predictions" / f"{job_id}.npz"

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.run_dir).as_posix()

    # reading

    def _read(self, job_id: str) -> dict | None:
        """The job's JSON object; None when there is none or it cannot be read (a job that is not done)."""
        path = self.job_path(job_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def load(self, job_id: str, full: bool = True) -> JobOutcome | None:
        """The job's saved outcome, with its arrays and data-set summary put back (`full`), else as its JSON holds
        it (see `outcome_from_dict`); None when it is missing or it or a file it refers to cannot be read."""
        data = self._read(job_id)
        if data is None:
            return None
        try:
            return outcome_from_dict(data, self.run_dir if full else None)
        except (TypeError, ValueError, KeyError, AttributeError):
            return None  # unreadable: treated as not done

    def row(self, job_id: str) -> JobRow | None:
        """The job's outcome in brief, from `rows/<id>.json` when it was made from the JSON that is there now and
        the files that JSON refers to are intact; else from the JSON itself (and the row file is written again).
        None when the job has no readable result."""
        path = self.job_path(job_id)
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = _stamp(stat)
        try:
            cached = json.loads(self.row_path(job_id).read_text(encoding="utf-8"))
            if cached.get("json") == stamp and cached.get("job_id") == job_id:
                if not _files_intact(self.run_dir, cached.get("files")):
                    return None
                return JobRow(job_id, cached["label"], cached["status"], cached["row"], cached.get("error"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no row file, an older one or a damaged one: read the JSON
        data = self._read(job_id)
        if data is None:
            return None
        try:
            outcome = outcome_from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        files = referenced_files(data)
        if not _files_intact(self.run_dir, files):
            return None
        row = JobRow.of(outcome)
        try:
            after = path.stat()
            if _stamp(after) == stamp:  # not replaced while it was read
                self._write_row(row, stamp, files)
        except OSError:
            pass  # a folder that cannot be written: the row is still right
        return row

    def is_finished(self, job_id: str) -> bool:
        """Whether the job's saved outcome has status ok (an unreadable result, or one whose arrays file is gone
        or has another size, is not)."""
        row = self.row(job_id)
        return row is not None and row.status == "ok"

    def results(self) -> list[JobOutcome]:
        """Every job's outcome in full (arrays put back)."""
        found = (self.load(p.stem) for p in sorted(self.jobs_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def rows(self) -> list[JobRow]:
        """Every job's outcome in brief."""
        found = (self.row(p.stem) for p in sorted(self.jobs_dir.glob("*.json")))
        return [r for r in found if r is not None]

    # writing

    def _write_row(self, row: JobRow, stamp: list[int], files: dict) -> None:
        record = {"job_id": row.job_id, "label": row.label, "status": row.status, "error": row.error,
                  "row": row.row, "json": stamp, "files": files}
        write_atomic(self.row_path(row.job_id), _compact(json_safe(record)))

    def _externalise(self, data: dict) -> dict:
        """`data` with its long per-class lists written to `arrays/<id>.npz` and a data-set summary with long
        lists written once per run to `datasets/<hash>.json`."""
        if data.get("arrays"):  # read back without its arrays: put them back first, then store them again
            data = restore(data, self.run_dir)
        packed, metrics = {}, {}
        for split, values in (data.get("metrics") or {}).items():
            if isinstance(values, dict):
                values = dict(values)
                for key in ARRAY_KEYS:
                    array = _pack(key, values.get(key))
                    if array is not None:
                        packed[f"metrics.{split}.{key}"] = array
                        del values[key]
            metrics[split] = values
        data = dict(data)
        if packed:
            path = self.arrays_path(data["job_id"])
            with atomic_file(path) as fh:
                np.savez_compressed(fh, **packed)
            data["metrics"] = metrics
            data["arrays"] = {"file": self._relative(path), "keys": sorted(packed), "bytes": path.stat().st_size}
        dataset = data.get("dataset")
        if isinstance(dataset, dict) and not dataset.get("file") and any(
                isinstance(v, list) and len(v) > INLINE_LIMIT for v in dataset.values()):
            text = _compact(dataset)
            path = self.run_dir / "datasets" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"
            if _file_size(path) != len(text.encode()):
                write_atomic(path, text)
            data["dataset"] = {**{k: v for k, v in dataset.items() if not isinstance(v, list)},
                               "file": self._relative(path), "bytes": len(text.encode())}
        return data

    def save(self, outcome: JobOutcome) -> Path:
        """Write the outcome's files (arrays and data-set summary first, then the JSON, then its row)."""
        path = self.job_path(outcome.job_id)
        data = self._externalise(outcome.to_dict())  # copies what it changes: the outcome stays as it was
        try:
            text = _compact(data)
        except ValueError:  # NaN or infinity somewhere (a failure's loss, lr=inf): written as strings
            text = _compact(json_safe(data))
        write_atomic(path, text)
        stat = path.stat()
        saved = json.loads(text)  # the row holds what the JSON holds (NaN as "nan", as results.csv had it)
        self._write_row(JobRow.of(outcome_from_dict(saved)), _stamp(stat), referenced_files(saved))
        return path

    def _save_means(self, means: np.ndarray) -> str:
        """Class means in float16 under `means/<hash of their content>.npy`, written once (again when a file of
        another size is there); the path relative to the run folder."""
        means = np.ascontiguousarray(np.asarray(means).astype(np.float16))
        digest = hashlib.sha256(f"{means.dtype}{means.shape}".encode() + means.tobytes()).hexdigest()[:24]
        path = self.run_dir / "means" / f"{digest}.npy"
        size = _file_size(path)
        if size is None or not means.nbytes < size <= means.nbytes + 4096:  # data + its .npy header
            with atomic_file(path) as fh:
                np.save(fh, means)
        return self._relative(path)

    def save_statistics(self, job_id: str, stats: dict) -> str:
        """The job's per-class statistics as `stats/<job id>.npz`; of the class means only the test split's, in
        float16, in a file shared by every job with the same ones (`test_means_file` names it). Its path
        relative to the run folder."""
        kept = {k: v for k, v in stats.items() if not k.endswith("means")}
        if stats.get(MEANS_KEY) is not None:
            kept[MEANS_FILE_KEY] = np.array(self._save_means(stats[MEANS_KEY]))
        path = self.stats_path(job_id)
        with atomic_file(path) as fh:
            np.savez_compressed(fh, **kept)
        return self._relative(path)

    def save_predictions(self, job_id: str, predictions: dict[str, np.ndarray]) -> dict:
        """Per-image arrays of the test split (`test`: the predicted class, `test_logit`: its logit, `test_label`:
        the true class, all in the split's order) as `predictions/<id>.npz`; the result's record of them: file,
        keys and size."""
        path = self.predictions_path(job_id)
        with atomic_file(path) as fh:
            np.savez_compressed(fh, **predictions)
        return {"file": self._relative(path), "keys": sorted(predictions), "bytes": path.stat().st_size}

    def read_predictions(self, job_id: str, keys: tuple[str, ...] = ("test", "test_logit")) -> dict[str, np.ndarray]:
        """The job's per-image test predictions (see save_predictions; `test_label` only in results written since
        it was saved); ResultFileError when missing or damaged."""
        return _read_arrays(self.predictions_path(job_id), list(keys), "test predictions")

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

    def write_table(self, current: set[str] | None = None) -> Path:
        """results.csv: one row per job, or per job of `current` (the manifest's current jobs: results of
        changed data are left out, as in the report, so that no mean over its rows mixes old data in)."""
        rows = [r.to_row() for r in self.rows() if current is None or r.job_id in current]
        frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS)).sort_values(["dataset", "regime", "seed"],
                                                                         na_position="last")
        path = self.run_dir / "results.csv"
        write_atomic(path, frame.to_csv(index=False))
        return path
