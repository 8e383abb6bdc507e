"""Plain-text summary table of a run (printed at the end of every run)."""
from __future__ import annotations

from bench.text_table import format_cell, format_table

COLUMNS = [("dataset", "dataset", "{}"), ("regime", "regime", "{}"), ("seed", "seed", "{}"),
           ("status", "status", "{}"), ("top1", "top-1", "{:.2f}"), ("many", "many", "{:.2f}"),
           ("medium", "medium", "{:.2f}"), ("few", "few", "{:.2f}"), ("train_top1", "train", "{:.2f}"),
           ("trainable_params", "trainable", "{:,}"), ("backbone_pct", "%backbone tuned", "{:.3f}"),
           ("epochs", "epochs", "{}"), ("total_s", "time s", "{:.1f}")]
EMPTY = "–"  # an empty group, or a value a failed job does not have


def _remedy(row: dict) -> str | None:
    """A derived job's remedy and its α or τ: wise(0.5), logit_adjust(1), greedy_soup."""
    value = row.get("remedy_value")
    return row.get("remedy") and (row["remedy"] if value is None else f"{row['remedy']}({value:g})")


def format_summary(rows: list[dict]) -> str:
    """The rows as a plain table; `%backbone tuned` counts the backbone only (`backbone_trainable_pct`), or
    `trainable_pct` (the classifier counted in) for rows that lack it. A run with derived jobs (--remedies) has a
    `remedy` column beside the regime."""
    rows = [{**row, "remedy_text": _remedy(row), "backbone_pct": row.get("backbone_trainable_pct")
             if row.get("backbone_trainable_pct") is not None else row.get("trainable_pct")} for row in rows]
    columns = COLUMNS[:2] + [("remedy_text", "remedy", "{}")] + COLUMNS[2:] if any(r["remedy_text"] for r in rows) \
        else COLUMNS
    return format_table([title for _, title, _ in columns],
                        [[format_cell(row.get(key), fmt, EMPTY) for key, _, fmt in columns] for row in rows])
