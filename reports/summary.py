"""Plain-text summary table of a run (printed at the end of every run)."""
from __future__ import annotations

COLUMNS = [("dataset", "dataset", "{}"), ("regime", "regime", "{}"), ("seed", "seed", "{}"),
           ("status", "status", "{}"), ("top1", "top-1", "{:.2f}"), ("many", "many", "{:.2f}"),
           ("medium", "medium", "{:.2f}"), ("few", "few", "{:.2f}"), ("train_top1", "train", "{:.2f}"),
           ("trainable_params", "trainable", "{:,}"), ("trainable_pct", "%backbone", "{:.3f}"),
           ("epochs", "epochs", "{}"), ("total_s", "time s", "{:.1f}")]
EMPTY = "–"  # an empty group, or a value a failed job does not have


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return EMPTY
    return fmt.format(value)


def format_summary(rows: list[dict]) -> str:
    header = [title for _, title, _ in COLUMNS]
    body = [[_cell(row.get(key), fmt) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
