"""The run's results as a Markdown table, mean ± standard deviation over seeds (for READMEs and notes): accuracies,
their 95 % intervals and the class-balanced metrics of LIFT's evaluator on the test split."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from bench.bootstrap import seed_interval
from bench.data.options import untested_line

from .load import Run

CI = "ci"  # a column's format: its row's 95 % interval (`row_interval`)
SPREAD = "± sd over seeds (sample sd, ddof = 1; n = 1 shows the mean alone)"
RECIPE = {"backbone_tuned_pct", "classifier_params"}  # the same for every seed of a row: its mean alone
COLUMNS = [("backbone_tuned_pct", "% backbone tuned", ".2f"), ("classifier_params", "classifier params", ",.0f"),
           ("top1", "overall", ".1f"), ("top1", "overall 95% CI", CI),
           ("many", "many", ".1f"), ("medium", "medium", ".1f"), ("few", "few", ".1f"), ("few", "few 95% CI", CI),
           ("train_top1", "train", ".1f"), ("few_gap", "few-shot gap", ".3f"), ("total_s", "time s", ".0f"),
           ("worst_class_acc", "worst class", ".1f"), ("hmean_acc", "harmonic mean", ".1f"),
           ("gmean_acc", "geometric mean", ".1f"), ("macro_f1", "macro-F1", ".1f")]  # CI, or mean ± sd to `spec`


def row_interval(rows: pd.DataFrame, metric: str) -> list[float] | None:
    """A row's 95 % interval of `metric`: the bootstrap of the mean over its seeds when it has several, else
    its one job's bootstrap over test images (`{metric}_ci_low/high`); None where neither exists."""
    if rows.seed.nunique() > 1:
        return seed_interval(rows[metric])
    low, high = rows[f"{metric}_ci_low"].iloc[0], rows[f"{metric}_ci_high"].iloc[0]
    return None if pd.isna(low) or pd.isna(high) else [float(low), float(high)]


def interval_text(bounds: list[float] | None, digits: int = 1) -> str:
    return "" if bounds is None else f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


class SeedStats(NamedTuple):
    """A row's values over its seeds: every report table (Markdown, LaTeX, wide CSV) takes its ± from here."""
    mean: float
    sd: float  # sample sd (ddof = 1); NaN with one seed, never a fake 0
    n: int


def seed_stats(values) -> SeedStats | None:
    """Mean, sample sd and count of a row's values over its seeds (missing values left out); None with none."""
    values = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    if values.empty:
        return None
    return SeedStats(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                     len(values))


def mean_sd(values, spec: str = ".1f") -> str:
    """`mean ± sd` of a row's values over its seeds, the mean alone with one seed (no fake ± 0); "" with none."""
    stats = seed_stats(values)
    if stats is None:
        return ""
    spread = f" ± {stats.sd:{spec}}" if stats.n > 1 else ""
    return f"{stats.mean:{spec}}{spread}"


def _cell(rows: pd.DataFrame, column: str, spec: str) -> str:
    if spec == CI:
        return interval_text(row_interval(rows, column))
    return mean_sd(rows[column].dropna().iloc[:1] if column in RECIPE else rows[column], spec)


def markdown_table(run: Run, dataset: str) -> str:
    """One row per recipe of a regime on `dataset` (reports.load's `row`), sorted by few-shot accuracy;
    accuracies as mean ± sd over seeds, intervals as in `row_interval`."""
    from .figures import backbone_share

    rows = run.main[run.main.dataset == dataset].copy()
    rows["backbone_tuned_pct"] = backbone_share(rows)  # classifier not counted; trainable_pct for older results
    classifier = rows.get("classifier_params")
    rows["classifier_params"] = pd.to_numeric(classifier, errors="coerce") if classifier is not None else None
    rows["few_gap"] = [run.few_shot_gap(job_id) for job_id in rows.job_id]
    order = rows.groupby("row").few.mean().sort_values(ascending=False).index
    head = ["regime", "seeds"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in order:
        group = rows[rows.row == row]
        cells = [row, str(group.seed.nunique())] + [_cell(group, col, fmt) for col, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def untested_lines(run: Run, dataset: str) -> list[str]:
    """For `dataset`'s finished main jobs, a line per split that lacks classes (allow_untested_classes) naming
    them: no metric of that split counts them."""
    lines = {}
    for job_id in run.main.job_id[run.main.dataset == dataset]:
        untested = (getattr(run.results[job_id], "dataset", None) or {}).get("untested_classes") or {}
        lines.update(dict.fromkeys(untested_line(split, names) for split, names in untested.items() if names))
    return list(lines)


def run_markdown(run: Run) -> str:
    """One table per data set under a line saying what the ± is, and the classes its metrics leave out; then the
    heavy − light table of each grid with a data-set axis (reports.sweep_figures)."""
    from .sweep_figures import sweep_markdown  # the figure's module loads pyplot

    sweeps = [text for text in (sweep_markdown(run),) if text]
    if run.main.empty:
        return "\n\n".join(sweeps) or "(no results)"
    tables = ["\n\n".join([dataset, markdown_table(run, dataset), *untested_lines(run, dataset)])
              for dataset in sorted(set(run.main.dataset))]
    return "\n\n".join([f"Mean {SPREAD}; seeds = n.", *tables, *sweeps])
