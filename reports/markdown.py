"""The run's results as a Markdown table, mean ± standard deviation over seeds (for READMEs and notes)."""
from __future__ import annotations

import pandas as pd

from .load import Run

COLUMNS = [("trainable_pct", "% backbone", "{:.2f}"), ("top1", "overall", None), ("many", "many", None),
           ("medium", "medium", None), ("few", "few", None), ("train_top1", "train", None),
           ("few_gap", "few-shot gap", "{:+.3f}"), ("total_s", "time s", "{:.0f}")]


def _cell(values: pd.Series, fmt: str | None) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return ""
    if fmt is not None:
        return fmt.format(values.mean())
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f}{spread}"


def markdown_table(run: Run, dataset: str) -> str:
    """One row per recipe of a regime on `dataset` (reports.load's `row`), sorted by few-shot accuracy;
    accuracies as mean ± sd over seeds."""
    rows = run.main[run.main.dataset == dataset].copy()
    rows["few_gap"] = [run.few_shot_gap(job_id) for job_id in rows.job_id]
    order = rows.groupby("row").few.mean().sort_values(ascending=False).index
    head = ["regime", "seeds"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in order:
        group = rows[rows.row == row]
        cells = [row, str(group.seed.nunique())] + [_cell(group[col], fmt) for col, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_markdown(run: Run) -> str:
    return "\n\n".join(f"{dataset}\n\n{markdown_table(run, dataset)}"
                       for dataset in sorted(set(run.main.dataset))) if not run.main.empty else "(no results)"
