"""Read a run folder: job results as a table, per-class statistics, grids, and what is failed or missing."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import RunStore, table_row
from regimes import REGIMES


@dataclass
class Run:
    path: Path
    results: list[dict]
    table: pd.DataFrame  # one row per job (ok and failed)
    grids: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failed jobs, missing regimes, unreadable files
    main_ids: set[str] = field(default_factory=set)  # jobs of the regimes' own recipes (not grid variants)

    @property
    def ok(self) -> pd.DataFrame:
        return self.table[self.table.status == "ok"]

    @property
    def main(self) -> pd.DataFrame:
        """Finished jobs of the regimes' own recipes (grid variants have their own figures)."""
        ok = self.ok
        return ok[ok.job_id.isin(self.main_ids)]

    def result(self, job_id: str) -> dict:
        return next(r for r in self.results if r.get("job_id") == job_id)

    def few_shot_gap(self, job_id: str) -> float | None:
        """The job's headline feature statistic: test − train pairwise spread, averaged over few-shot classes."""
        stats = self.result(job_id).get("statistics") or {}
        return ((stats.get("groups") or {}).get("few") or {}).get("gap_pairwise")

    def stats(self, job_id: str) -> dict[str, np.ndarray] | None:
        info = self.result(job_id).get("statistics") or {}
        path = self.path / info["file"] if info.get("file") else None
        if path is None or not path.is_file():
            return None
        with np.load(path) as z:
            return {k: z[k] for k in z.files}


def _main_ids(results: list[dict], grids: list[dict]) -> set[str]:
    """Jobs outside grids, and grid jobs whose recipe is their regime's default (epochs aside)."""
    grid_only = {j["job_id"] for g in grids for j in g["jobs"]}

    def is_main(result: dict) -> bool:
        if result.get("job_id") not in grid_only:
            return True
        regime = result["config"]["regime"]
        if regime not in REGIMES.names():
            return False
        default = dataclasses.asdict(REGIMES.get(regime).recipe)
        recipe = result["config"]["recipe"]
        return all(recipe.get(k) == v for k, v in default.items() if k != "epochs")

    return {r["job_id"] for r in results if is_main(r)}


def load_run(path: str | Path) -> Run:
    store = RunStore(path)
    if not store.jobs_dir.is_dir():
        raise FileNotFoundError(f"{path} is not a run folder (no jobs/ in it); run a benchmark with --out {path}")
    results, problems = [], []
    for file in sorted(store.jobs_dir.glob("*.json")):
        try:
            results.append(json.loads(file.read_text(encoding="utf-8")))
        except json.JSONDecodeError:
            problems.append(f"unreadable result file {file.name} (ignored)")
    rows = []
    for r in results:
        row = table_row(r)
        dataset = r.get("dataset") or {}
        timings = r.get("timings") or {}
        row.update({"num_classes": dataset.get("num_classes"), "train_images_per_s": timings.get("train_images_per_s"),
                    "peak_memory_mb": timings.get("peak_memory_mb"), "label": r.get("label")})
        rows.append(row)
        if r.get("status") != "ok":
            problems.append(f"{r.get('label')} failed: {r.get('error')}")
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=["dataset", "regime", "seed", "status", "job_id"])
    grids = []
    for file in sorted((store.run_dir / "grids").glob("*.json")):
        grids.append(json.loads(file.read_text(encoding="utf-8")))
    known = set(table.job_id)
    for g in grids:
        absent = [j for j in g["jobs"] if j["job_id"] not in known]
        if absent:
            problems.append(f"grid {g['name']}: {len(absent)} of {len(g['jobs'])} jobs have no result yet")
    main_ids = _main_ids(results, grids)
    main = table[table.job_id.isin(main_ids)]
    regimes = sorted(set(main.regime))
    for dataset in sorted(set(main.dataset)):
        have = set(main[main.dataset == dataset].regime)
        for regime in regimes:
            if regime not in have:
                problems.append(f"{dataset}: no result for regime {regime}")
    return Run(Path(path), results, table, grids, problems, main_ids)
