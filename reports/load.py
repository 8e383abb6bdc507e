"""Read a run folder: job results as a table, per-class statistics, grids, and what is failed, missing or left out.

Which jobs are main jobs, their grids, lightweight flag and protocol come from the run's manifest.json, as they
were when the jobs were planned; folders written before manifests existed fall back to today's registry. Every
job gets a `row`: the jobs of one row share a recipe (config less the seed) and data, and only they are averaged.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.groups import GROUP_NAMES
from bench.job_result import CI_COLUMNS, CLASS_BALANCED, JobOutcome, JobResult, outcome_from_dict, recipe_id
from bench.manifest import Manifest, ManifestJob, read_manifest
from bench.registry import REGIMES
from bench.results import ResultFileError, RunStore, read_statistics

COLUMNS = ["job_id", "label", "status", "dataset", "regime", "row", "recipe_id", "seed", "lightweight", "protocol",
           "top1", *GROUP_NAMES, "train_top1", *(f"train_{g}" for g in GROUP_NAMES), "trainable_params", "trainable_pct", "epochs", "train_s", "total_s", "num_classes", "train_images_per_s",
           "peak_memory_mb", *CLASS_BALANCED, *CI_COLUMNS, "backbone_trainable_params", "backbone_trainable_pct",
           "classifier_params", "ppt"]
NUMERIC = COLUMNS[COLUMNS.index("top1"):]
LISTED = 5  # job labels named in one problem line


FULL_RESULTS_KEPT = 8  # results read back in full (per-class arrays) that a Run keeps for the next call


def rewrite_fix(label: str, missing: bool) -> str:
    """What to do about a damaged or missing file of a job's result: every such file is written again when
    the job reruns (a damaged one of the right size would be kept, so it is deleted first)."""
    rerun = f"rerun {label} with --force (that data set, regime and seed) to write it again"
    return rerun if missing else f"delete it and {rerun}"


@dataclass
class Run:
    path: Path
    # job id -> outcome shown (stale ones and those of no plan only with include_all), as its JSON holds it: the
    # per-class arrays and the data-set summary that RunStore keeps in files of their own come with `result`
    results: dict[str, JobOutcome]
    table: pd.DataFrame  # one row per shown job (ok and failed); COLUMNS and JobResult.to_row's
    grids: list[dict] = field(default_factory=list)  # grid records, members reduced to the shown jobs
    problems: list[str] = field(default_factory=list)  # failed, missing, left out, unreadable
    main_ids: set[str] = field(default_factory=set)  # jobs of the regimes' own recipes (not grid variants)
    manifest: Manifest | None = None
    # file -> one line naming it and what to do: the files found missing or damaged so far (jobs/ when the run
    # is loaded, the rest as parts of the report read them)
    damaged: dict[str, str] = field(default_factory=dict)
    # job id -> the run folder holding its files where that is not `path` (a report of several runs, merged by
    # reports.merge, is written to a folder of its own); `sources`: run label -> folder of such a report
    homes: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    _full: dict = field(default_factory=dict, repr=False, compare=False)  # a few results read back in full

    @property
    def ok(self) -> pd.DataFrame:
        return self.table[self.table.status == "ok"]

    @property
    def main(self) -> pd.DataFrame:
        """Finished jobs of the regimes' own recipes (grid variants have their own figures)."""
        ok = self.ok
        return ok[ok.job_id.isin(self.main_ids)]

    def result(self, job_id: str) -> JobResult:
        """A finished job's result in full (the table's ok rows name them): its per-class accuracies, confusion
        counts and data-set summary read back from the run folder when RunStore keeps them apart. Raises
        bench.results.ResultFileError naming a file that is missing or damaged and what to do (`damaged`)."""
        result = self.results[job_id]
        if not (getattr(result, "arrays", None) or (getattr(result, "dataset", None) or {}).get("file")):
            return result  # everything inline (folders written before, small data sets)
        if job_id not in self._full:
            if len(self._full) >= FULL_RESULTS_KEPT:
                self._full.pop(next(iter(self._full)))
            try:
                self._full[job_id] = outcome_from_dict(result.to_dict(), self.home(job_id))
            except ResultFileError as exc:
                raise self._damaged(job_id, exc) from None
        return self._full[job_id]

    def home(self, job_id: str) -> Path:
        """The run folder that holds the job's files."""
        return self.homes.get(job_id, self.path)

    def few_shot_gap(self, job_id: str) -> float | None:
        """The job's headline feature statistic: test − train pairwise spread, averaged over few-shot classes
        (in the job's JSON: no other file is read)."""
        stats = self.results[job_id].statistics or {}
        return ((stats.get("groups") or {}).get("few") or {}).get("gap_pairwise")

    def stats(self, job_id: str, keys: tuple[str, ...] | None = None,
              class_means: bool = True) -> dict[str, np.ndarray] | None:
        """The job's per-class feature statistics, or those of `keys` (`test_means` from the shared class-means
        file, or from the statistics file of folders written before; without `class_means` no class means are
        read); None without a statistics file. Raises ResultFileError as `result` does."""
        info = self.results[job_id].statistics or {}
        if not info.get("file"):
            return None
        try:
            return read_statistics(self.home(job_id), info["file"], keys, class_means)
        except ResultFileError as exc:
            raise self._damaged(job_id, exc) from None

    def predictions(self, job_id: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The job's per-image test arrays of `keys` (bench.results.RunStore.read_predictions). Raises
        ResultFileError as `result` does."""
        try:
            return RunStore(self.home(job_id)).read_predictions(job_id, keys)
        except ResultFileError as exc:
            raise self._damaged(job_id, exc) from None

    def _damaged(self, job_id: str, exc: ResultFileError) -> ResultFileError:
        """`exc` with what to do about it, recorded once per file in `damaged`."""
        message = f"{exc}; {rewrite_fix(self.results[job_id].label or job_id, not exc.path.exists())}"
        self.damaged.setdefault(str(exc.path), message)
        return ResultFileError(self.damaged[str(exc.path)], exc.path)


def _derived_main_ids(results: list[JobOutcome], grids: list[dict]) -> set[str]:
    """Without a plan to say it: jobs outside grids, and grid jobs whose recipe is their regime's default today
    (epochs aside); never a derived job (a remedy on another job: --remedies), whose row would pose as its parent's."""
    grid_only = {j["job_id"] for g in grids for j in g["jobs"]}

    def is_main(result: JobOutcome) -> bool:
        if result.config.get("derived"):
            return False
        if result.job_id not in grid_only:
            return True
        config = result.config
        if config.get("regime") not in REGIMES.names():
            return False
        default = dataclasses.asdict(REGIMES.get(config["regime"]).recipe)
        recipe = config.get("recipe") or {}
        return all(recipe.get(k) == v for k, v in default.items() if k != "epochs")

    return {r.job_id for r in results if is_main(r)}


def _derived_lightweight(regime, trainable_pct) -> bool:
    """Without a plan to say it: the registry's flag; an unknown name is light when it trains under 1%."""
    if regime in REGIMES:
        return REGIMES.get(regime).lightweight
    return trainable_pct is not None and 0 < trainable_pct < 1.0


def _flatten(value: dict, prefix: str = "") -> dict:
    flat = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _identity(result: JobOutcome, job: ManifestJob | None) -> dict:
    """What two jobs must share to be averaged: the config less the seed, the split they ran on and, from the
    manifest, protocol and data fingerprint (where the config does not hold them itself)."""
    flat = _flatten({k: v for k, v in result.config.items() if k != "seed"})
    extra = {"split_fingerprint": getattr(result, "split_fingerprint", None)}
    if job is not None:
        extra.update(protocol=job.protocol, data_fingerprint=job.data_fingerprint)
    for key, value in extra.items():
        if value is not None:
            flat.setdefault(key, value)
    return flat


def _show(value, short: bool) -> str:
    """A field's value in a row label: hashes cut to 8 characters and floats to 6 digits when `short`."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if short and isinstance(value, float):
        return f"{value:g}"
    if short and isinstance(value, str) and len(value) > 12 and all(c in "0123456789abcdef" for c in value):
        return value[:8]
    return value if isinstance(value, str) else json.dumps(value)


def _labels(regime: str, recipes: dict[str, dict], always: tuple[str, ...] = ()) -> dict[str, str]:
    """Per recipe key, the regime plus the fields in which its recipe differs from the regime's other ones and
    the fields `always` shown, e.g. `linear_probe [epochs=2]`; the bare regime name when that leaves none."""
    fields = sorted({name for flat in recipes.values() for name in flat
                     if len({json.dumps(f.get(name), sort_keys=True) for f in recipes.values()}) > 1} | set(always))
    if not fields:
        return {key: regime for key in recipes}
    short = {name: name.rsplit(".", 1)[-1] for name in fields}
    names = {name: s if list(short.values()).count(s) == 1 else name for name, s in short.items()}
    for cut in (True, False):  # full values if cutting them made two labels equal
        labels = {key: f"{regime} [{', '.join(f'{names[n]}={_show(flat.get(n), cut)}' for n in fields)}]"
                  for key, flat in recipes.items()}
        if len(set(labels.values())) == len(labels):
            break
    return labels


def _rows(table: pd.DataFrame, identities: list[dict], main_ids: set[str]) -> list[str]:
    """Each job's row label, told apart among the finished jobs of its data set and regime (among the main ones
    for a main job, so a grid variant does not lengthen the main rows' labels). Failed jobs of no finished
    recipe keep the regime name."""
    keys = [json.dumps(flat, sort_keys=True, default=str) for flat in identities]
    labels: dict[tuple, str] = {}
    finished = table.status == "ok"
    # a run folder holding several backbones names the backbone in every row
    always = tuple(f for f in ("model", "pretrained") if table.loc[finished, f].nunique(dropna=False) > 1)
    for pool in (finished, finished & table.job_id.isin(main_ids)):
        for (dataset, regime), rows in table[pool].groupby(["dataset", "regime"]):
            recipes = {keys[i]: identities[i] for i in rows.index}
            labels.update({(dataset, key): label for key, label in _labels(str(regime), recipes, always).items()})
    return [labels.get((d, k), str(r)) for d, r, k in zip(table.dataset, table.regime, keys)]


def results_table(results: list[JobOutcome], manifest: Manifest | None, main_ids: set[str]) -> pd.DataFrame:
    """One row per result with its row label (`_rows`), told apart among all of `results`."""
    planned = manifest.jobs if manifest else {}
    rows, identities = [], []
    for r in results:
        job = planned.get(r.job_id)
        row = r.to_row()
        dataset, timings = getattr(r, "dataset", {}), getattr(r, "timings", {})
        row.update({"num_classes": dataset.get("num_classes"), "label": r.label,
                    "train_images_per_s": timings.get("train_images_per_s"),
                    "peak_memory_mb": timings.get("peak_memory_mb"),
                    "recipe_id": job.recipe_id if job else recipe_id(r.config),
                    "lightweight": job.lightweight if job else _derived_lightweight(row["regime"],
                                                                                    row["trainable_pct"]),
                    "protocol": job.protocol if job else r.config.get("protocol")})
        rows.append(row)
        identities.append(_identity(r, job))
    table = pd.DataFrame(rows)
    table = table.reindex(columns=list(dict.fromkeys(COLUMNS + list(table.columns))))
    table[NUMERIC] = table[NUMERIC].apply(pd.to_numeric, errors="coerce")
    table["lightweight"] = table.lightweight.eq(True)
    table["row"] = _rows(table, identities, main_ids) if rows else pd.Series(dtype=object)
    return table


def _results(count: int) -> str:
    return f"{count} result{'' if count == 1 else 's'}"


def _listed(labels: list) -> str:
    labels = sorted(str(label) for label in labels)
    return ", ".join(labels[:LISTED]) + (f" and {len(labels) - LISTED} more" if len(labels) > LISTED else "")


def _select(by_id: dict[str, JobOutcome], manifest: Manifest, include_all: bool, problems: list[str]
            ) -> dict[str, JobOutcome]:
    """The results of jobs the plans still stand by; stale ones and those of no plan only with `include_all`.
    Says in `problems` what was left out (or let in) and why, and what the plans lack."""
    stale = manifest.stale_ids() & set(by_id)
    unplanned = set(by_id) - set(manifest.jobs)
    fate = "included (--all)" if include_all else "left out"
    if stale:
        problems.append(f"{_results(len(stale))} {fate} as stale: a later plan read their data set with other data "
                        f"(split files or images changed): {_listed(manifest.jobs[i].label for i in stale)}"
                        + ("" if include_all else "; `report --all` shows them"))
    if unplanned:
        problems.append(f"{_results(len(unplanned))} in jobs/ {fate}: no plan in manifest.json lists them (written "
                        f"before it, or copied in): {_listed(by_id[i].label or i for i in unplanned)}"
                        + ("" if include_all else "; `report --all` shows them"))
    current = manifest.current_ids()
    absent = current - set(by_id)
    if absent:
        problems.append(f"{len(absent)} of {len(current)} planned jobs have no result yet (not run, running or "
                        f"interrupted): {_listed(manifest.jobs[i].label for i in absent)}")
    return by_id if include_all else {i: r for i, r in by_id.items() if i in current}


def _read_grids(store: RunStore, problems: list[str], damaged: dict[str, str]) -> list[dict]:
    grids = []
    for file in sorted((store.run_dir / "grids").glob("*.json")):
        try:
            grid = json.loads(file.read_text(encoding="utf-8"))
            if not (isinstance(grid, dict) and isinstance(grid.get("name"), str) and isinstance(grid.get("jobs"), list)
                    and all(isinstance(j, dict) and "job_id" in j for j in grid["jobs"])):
                raise ValueError("not a grid record")
            grids.append(grid)
        except (OSError, ValueError) as exc:
            damaged[str(file)] = (f"the grid file {file} is damaged ({type(exc).__name__}), so the report has no "
                                  f"figure of grid {file.stem}: delete it and rerun the run command with that --grid "
                                  f"(it writes the file again; finished jobs are not rerun)")
            problems.append(damaged[str(file)])
    return grids


def _shown_grid(grid: dict, shown: set[str], manifest: Manifest | None, problems: list[str]) -> dict:
    """The grid record less the members left out (those of current plans that have no result yet stay, to be
    named as missing); says which shown jobs the manifest places in the grid but its file lacks (rewritten by a
    later run of a grid of that name)."""
    if manifest is None:
        return grid
    listed = {j["job_id"] for j in grid["jobs"]}
    keep = shown | (manifest.current_ids() & listed)
    members = [j for j in grid["jobs"] if j["job_id"] in keep]
    earlier = [job.label for job_id, job in manifest.jobs.items()
               if grid["name"] in job.grids and job_id not in listed and job_id in shown]
    if earlier:
        problems.append(f"grid {grid['name']}: {len(earlier)} jobs planned in it earlier are not in grids/"
                        f"{grid['name']}.json (rewritten by a later run), so not in its figures: {_listed(earlier)}")
    return {**grid, "jobs": members}


def _unreadable_result(file: Path, exc: Exception, manifest: Manifest | None) -> str:
    """A job's JSON that cannot be read: the job is not done for the run command, which trains it again."""
    planned = manifest.jobs.get(file.stem) if manifest else None
    job = f"job {planned.label}" if planned else "job"
    return (f"the result file {file} is damaged ({type(exc).__name__}), so the report leaves its {job} out: "
            f"rerun the run command that planned it (the job is not done, so it trains again), or delete the file")


def load_run(path: str | Path, include_all: bool = False) -> Run:
    """The run folder's results; with a manifest, stale results and those of no plan only with `include_all`."""
    store = RunStore(path)
    if not store.jobs_dir.is_dir():
        raise FileNotFoundError(f"{path} is not a run folder (no jobs/ in it); run a benchmark with --out {path}")
    manifest = read_manifest(store.run_dir)
    results: dict[str, JobOutcome] = {}
    problems: list[str] = []
    damaged: dict[str, str] = {}
    for file in sorted(store.jobs_dir.glob("*.json")):
        try:
            outcome = outcome_from_dict(json.loads(file.read_text(encoding="utf-8")))
            results[outcome.job_id] = outcome
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            damaged[str(file)] = _unreadable_result(file, exc, manifest)
            problems.append(damaged[str(file)])
    if manifest is not None:
        results = _select(results, manifest, include_all, problems)
    shown = set(results)
    grids = [_shown_grid(g, shown, manifest, problems) for g in _read_grids(store, problems, damaged)]
    planned = manifest.jobs if manifest else {}
    main_ids = {i for i in shown if i in planned and planned[i].main} | \
        _derived_main_ids([r for i, r in results.items() if i not in planned], grids)
    table = results_table(list(results.values()), manifest, main_ids)
    for r in results.values():
        if r.status != "ok":
            problems.append(f"{r.label} failed: {r.error}")
    for g in grids:
        absent = [j for j in g["jobs"] if j["job_id"] not in shown]
        if absent:
            problems.append(f"grid {g['name']}: {len(absent)} of {len(g['jobs'])} jobs have no result yet")
    main = table[table.job_id.isin(main_ids)]
    regimes = sorted(set(main.regime.dropna()))
    for dataset in sorted(set(main.dataset.dropna())):
        have = set(main[main.dataset == dataset].regime)
        for regime in regimes:
            if regime not in have:
                problems.append(f"{dataset}: no result for regime {regime}")
    return Run(Path(path), results, table, grids, problems, main_ids, manifest, damaged)
