"""The run's results as a Markdown table, mean ± standard deviation over seeds (for READMEs and notes): accuracies,
their 95 % intervals and the class-balanced metrics of LIFT's evaluator on the test split."""
from __future__ import annotations

import pandas as pd

from bench.bootstrap import seed_interval

from .load import Run

CI = "ci"  # a column's format: its row's 95 % interval (`row_interval`)
COLUMNS = [("trainable_pct", "% backbone", "{:.2f}"), ("top1", "overall", None), ("top1", "overall 95% CI", CI),
           ("many", "many", None), ("medium", "medium", None), ("few", "few", None), ("few", "few 95% CI", CI),
           ("train_top1", "train", None), ("few_gap", "few-shot gap", "{:+.3f}"), ("total_s", "time s", "{:.0f}"),
           ("worst_class_acc", "worst class", None), ("hmean_acc", "harmonic mean", None),
           ("gmean_acc", "geometric mean", None), ("macro_f1", "macro-F1", None)]


def row_interval(rows: pd.DataFrame, metric: str) -> list[float] | None:
    """A row's 95 % interval of `metric`: the bootstrap of the mean over its seeds when it has several, else
    its one job's bootstrap over test images (`{metric}_ci_low/high`); None where neither exists."""
    if rows.seed.nunique() > 1:
        return seed_interval(rows[metric])
    low, high = rows[f"{metric}_ci_low"].iloc[0], rows[f"{metric}_ci_high"].iloc[0]
    return None if pd.isna(low) or pd.isna(high) else [float(low), float(high)]


def interval_text(bounds: list[float] | None, digits: int = 1) -> str:
    return "" if bounds is None else f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def _cell(rows: pd.DataFrame, column: str, fmt: str | None) -> str:
    if fmt == CI:
        return interval_text(row_interval(rows, column))
    values = pd.to_numeric(rows[column], errors="coerce").dropna()
    if values.empty:
        return ""
    if fmt is not None:
        return fmt.format(values.mean())
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f}{spread}"


def markdown_table(run: Run, dataset: str) -> str:
    """One row per recipe of a regime on `dataset` (reports.load's `row`), sorted by few-shot accuracy;
    accuracies as mean ± sd over seeds, intervals as in `row_interval`."""
    rows = run.main[run.main.dataset == dataset].copy()
    rows["few_gap"] = [run.few_shot_gap(job_id) for job_id in rows.job_id]
    order = rows.groupby("row").few.mean().sort_values(ascending=False).index
    head = ["regime", "seeds"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in order:
        group = rows[rows.row == row]
        cells = [row, str(group.seed.nunique())] + [_cell(group, col, fmt) for col, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_markdown(run: Run) -> str:
    return "\n\n".join(f"{dataset}\n\n{markdown_table(run, dataset)}"
                       for dataset in sorted(set(run.main.dataset))) if not run.main.empty else "(no results)"
