"""A run folder's manifest.json: what each invocation planned (recipe, data, protocol, main job or grid variant,
lightweight or not), so that the report reads those facts as they were when the jobs were planned instead of
re-deriving them from today's code, and can leave out results whose data has changed since.

    {"format": 1,
     "plans": [{"created", "command", "protocol", "hparam_source", "job_ids", "data": {dataset_key: fingerprint},
                "plugins": [{"name", "kind", "spec", "sha256", "regimes", "datasets", "losses"}]}],
     "jobs": {job_id: {every ManifestJob field}}}

Plans are in the order they were recorded; a job planned again keeps one entry (its latest fields, `main` if any
plan had it as main, the union of its grids).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence, TypeVar

from filelock import FileLock

from bench.io import write_atomic

MANIFEST = "manifest.json"
FORMAT = 1
T = TypeVar("T")


class ManifestError(ValueError):
    """manifest.json cannot be read; the message names the file."""


def _digest(value) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dataset_key(config: dict) -> str:
    """The data set as configured (name and options), whatever its files hold: a plan that reads the same key
    with another data fingerprint means the data changed."""
    return _digest({"dataset": config.get("dataset"), "dataset_config": config.get("dataset_config")})


@dataclass(frozen=True)
class ManifestJob:
    job_id: str
    label: str
    dataset: str
    regime: str
    seed: int
    recipe_id: str
    dataset_key: str
    data_fingerprint: str  # the split files and images when planned (bench.data.check_images)
    main: bool  # a regime's own recipe from --regimes, not only a grid variant
    grids: tuple[str, ...]  # names of the grids it is a point of
    lightweight: bool  # parameter-efficient, by the regime registry when planned
    protocol: str  # bench.protocols, e.g. "reference"

    def merged(self, later: ManifestJob) -> ManifestJob:
        """The entry once `later` planned the same job again."""
        return dataclasses.replace(later, main=self.main or later.main,
                                   grids=tuple(sorted(set(self.grids) | set(later.grids))))


@dataclass(frozen=True)
class Plan:
    created: str  # UTC, ISO 8601
    command: tuple[str, ...]
    protocol: str
    hparam_source: str  # which split chose the hyper-parameters, in words, for the report
    job_ids: tuple[str, ...]
    data: dict[str, str]  # dataset_key -> data fingerprint of every data set this plan read
    plugins: tuple[dict, ...] = ()  # bench.plugins.Plugin.record() of each plugin loaded (absent before plugins)


@dataclass(frozen=True)
class Manifest:
    plans: tuple[Plan, ...]
    jobs: dict[str, ManifestJob]

    def stale_ids(self) -> set[str]:
        """Jobs whose data set (same name and options) a later plan read with another data fingerprint: their
        numbers describe data that is no longer there."""
        last = {job_id: i for i, plan in enumerate(self.plans) for job_id in plan.job_ids}
        return {job_id for job_id, job in self.jobs.items()
                if any(plan.data.get(job.dataset_key, job.data_fingerprint) != job.data_fingerprint
                       for plan in self.plans[last.get(job_id, -1) + 1:])}

    def current_ids(self) -> set[str]:
        return set(self.jobs) - self.stale_ids()


def _entry(cls: type[T], raw: dict, *tuples: str) -> T:
    """`cls` from its JSON object (lists back to tuples); a missing key raises KeyError unless its field has a
    default (added in a later version), an extra one is ignored."""
    values = {f.name: raw[f.name] for f in dataclasses.fields(cls)
              if f.name in raw or f.default is dataclasses.MISSING}
    return cls(**{**values, **{name: tuple(values[name]) for name in tuples if name in values}})


def read_manifest(run_dir: str | Path) -> Manifest | None:
    """The run folder's manifest; None for folders written before manifests existed."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, this version reads {FORMAT}")
        plans = tuple(_entry(Plan, p, "command", "job_ids", "plugins") for p in raw["plans"])
        jobs = {job_id: _entry(ManifestJob, job, "grids") for job_id, job in raw["jobs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{path} is not a readable ltbench manifest ({type(exc).__name__}: {exc}); restore it "
                            "or move it away (the report then treats the folder as written before manifests)") \
            from exc
    return Manifest(plans, jobs)


def record_plan(run_dir: str | Path, jobs: list[ManifestJob], *, protocol: str, hparam_source: str,
                command: list[str], plugins: Sequence[dict] = ()) -> None:
    """Add one invocation's plan and its jobs to run_dir/manifest.json. Two runs on one folder may plan at once:
    the lock makes each read-merge-write whole, the atomic write keeps readers from a half-written file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(run_dir / f"{MANIFEST}.lock")):
        manifest = read_manifest(run_dir) or Manifest((), {})
        entries = dict(manifest.jobs)
        for job in jobs:
            entries[job.job_id] = entries.get(job.job_id, job).merged(job)  # also sorts and dedupes its grids
        plan = Plan(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=tuple(command),
                    protocol=protocol, hparam_source=hparam_source,
                    job_ids=tuple(dict.fromkeys(job.job_id for job in jobs)),
                    data={job.dataset_key: job.data_fingerprint for job in jobs}, plugins=tuple(plugins))
        merged = Manifest(manifest.plans + (plan,), entries)
        write_atomic(run_dir / MANIFEST, json.dumps({"format": FORMAT, **dataclasses.asdict(merged)}, indent=1))
