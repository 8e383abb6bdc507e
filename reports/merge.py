"""Several run folders as one report (`ltbench report RUN [RUN ...] --out DIR`): two studies side by side.

A job id is a hash of the job's config, so a job found in two folders is one job: it is counted once, and two
different results of it are refused. Rows are told apart over all the folders' jobs (reports.load), so two
backbones or two recipes never share a row; a row names the runs its jobs come from.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.manifest import Manifest
from bench.results import RunStore

from .load import Run, results_table
from .selection import read_selection


class MergeError(ValueError):
    """Run folders that cannot be reported together: what clashes and what to do."""


TIMINGS = ("seconds",)  # what a split's metrics hold besides numbers: how long it took, different every time


def _numbers(outcome) -> str:
    """What a result measured, comparable across folders (timings left out: they differ between runs)."""
    metrics = getattr(outcome, "metrics", None) or {}
    measured = {split: {k: v for k, v in values.items() if k not in TIMINGS} for split, values in metrics.items()}
    return json.dumps(measured, sort_keys=True, default=str)


def _pick(job_id: str, kept: tuple, found: tuple) -> tuple:
    """Of two copies (outcome, folder) of one job the finished one; refuses two finished ones that differ."""
    (a, a_dir), (b, b_dir) = kept, found
    if a.status == "ok" and b.status == "ok" and _numbers(a) != _numbers(b):
        raise MergeError(f"job {a.label or job_id} is in both {RunStore(a_dir).job_path(job_id)} and "
                         f"{RunStore(b_dir).job_path(job_id)} with different numbers (the same config run twice on "
                         f"different code or hardware): report the folders apart, or delete the copy you do not "
                         f"trust")
    return found if a.status != "ok" and b.status == "ok" else kept


def _row_runs(run: Run, origin: dict[str, list[str]], labels: list[str]) -> None:
    """Appends to each row label, per data set, the runs its jobs come from: `lora (vitb16)`, `lora (a+b)`."""
    table = run.table
    for _, index in table.groupby(["dataset", "row"]).groups.items():
        runs = {label for job_id in table.job_id[index] for label in origin[job_id]}
        table.loc[index, "row"] = table.row[index] + f" ({'+'.join(l for l in labels if l in runs)})"


def merge_runs(runs: list[Run], labels: list[str], out: str | Path) -> Run:
    """`runs` (each as reports.load.load_run read it) as one Run written to `out`; with several runs every row
    label names its runs (`labels`, one per run, in order). A run alone is only moved to `out`."""
    out = Path(out)
    chosen: dict[str, tuple] = {}
    origin: dict[str, list[str]] = {}
    for run, label in zip(runs, labels):
        for job_id, outcome in run.results.items():
            found = (outcome, run.path)
            chosen[job_id] = _pick(job_id, chosen[job_id], found) if job_id in chosen else found
            origin.setdefault(job_id, []).append(label)
    results = {job_id: outcome for job_id, (outcome, _) in chosen.items()}
    manifests = [run.manifest for run in runs if run.manifest is not None]
    manifest = Manifest(tuple(p for m in manifests for p in m.plans),
                        {k: v for m in reversed(manifests) for k, v in m.jobs.items()}) if manifests else None
    main_ids = set().union(*(run.main_ids for run in runs)) & set(results)
    several = len(runs) > 1
    problems, grids, damaged = [], [], {}
    for run, label in zip(runs, labels):
        prefix = f"{label}: " if several else ""
        problems += [prefix + line for line in run.problems]
        if several and run.manifest is None:
            problems.append(f"{label}: no manifest.json (written before plans were recorded), so the protocol and "
                            f"hyper-parameter source of its jobs are not recorded")
        if read_selection(run.path) and out.resolve() != Path(run.path).resolve():
            problems.append(f"{prefix}the model-selection table (--select) is in the run's own report only: "
                            f"ltbench report {run.path}")
        grids += [{**g, "name": f"{label}-{g['name']}"} if several else g for g in run.grids]
        damaged.update(run.damaged)
    merged = Run(out, results, results_table(list(results.values()), manifest, main_ids), grids, problems,
                 main_ids, manifest, damaged, homes={job_id: home for job_id, (_, home) in chosen.items()},
                 sources=dict(zip(labels, (run.path for run in runs))) if several else {})
    if several:
        _row_runs(merged, origin, labels)
    return merged


def run_labels(run_dirs: list[str], label_options: list[str]) -> list[str]:
    """Each run folder's label: its `--label RUN=NAME`, else the folder's name. Raises MergeError for a folder
    given twice, a --label of no given folder, a label that names no file safely, and two runs of one label."""
    folders = [Path(d).resolve() for d in run_dirs]
    twice = sorted({d for d, f in zip(run_dirs, folders) if folders.count(f) > 1})
    if twice:
        raise MergeError(f"run folder {twice[0]} is given twice: give each run once")
    if label_options and len(run_dirs) == 1:
        raise MergeError("--label names the runs of a report of several run folders; with one there is nothing to "
                         "tell apart: drop --label")
    labels = [f.name for f in folders]
    named = set()
    for option in label_options:
        run, _, name = option.partition("=")
        if not run or not name.strip():
            raise MergeError(f"--label {option}: write RUN=NAME, RUN one of the run folders given")
        if Path(run).resolve() not in folders:
            raise MergeError(f"--label {option}: {run} is not one of the run folders given "
                             f"({', '.join(run_dirs)}): label one of them")
        if any(c in name for c in "/\\+"):
            raise MergeError(f"--label {option}: a label may not hold / \\ or + (it names figure files, and a row "
                             f"of several runs joins their labels with +): choose another")
        index = folders.index(Path(run).resolve())
        if index in named:
            raise MergeError(f"--label {option}: {run} is labelled twice: give one --label per run")
        named.add(index)
        labels[index] = name.strip()
    clash = sorted({label for label in labels if labels.count(label) > 1})
    if clash:
        raise MergeError(f"two run folders are labelled {clash[0]}: tell them apart with --label RUN=NAME")
    return labels


def check_out(run_dirs: list[str], out: str | None) -> None:
    """A report of several runs goes to a folder of its own: required, and never a run folder (whose own
    report.html it would replace)."""
    if out is None:
        if len(run_dirs) > 1:
            raise MergeError("a report of several run folders needs a folder of its own: add --out DIR (each run "
                             "keeps its own report)")
        return
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise MergeError(f"--out {out} is a file: give a folder")
    alone = len(run_dirs) == 1 and target.resolve() == Path(run_dirs[0]).resolve()
    if (target / "jobs").is_dir() and not alone:
        raise MergeError(f"--out {out} is a run folder (jobs/ in it): the merged report would replace its own "
                         f"report.html; give another folder")
