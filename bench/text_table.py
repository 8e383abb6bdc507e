"""Aligned plain-text tables: the run summary and the performance benchmark print through `format_table`."""
from __future__ import annotations

from collections.abc import Sequence

DASH = "–"  # the default cell of a missing value (None or NaN)


def format_cell(value, fmt: str = "{}", empty: str = DASH) -> str:
    """`value` formatted with `fmt`, or `empty` where it is None or NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return empty
    return fmt.format(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, each as wide as its widest cell, under a rule of dashes.

    Trailing spaces are stripped from the header and the rows, not from the rule, which spans every column.
    """
    table = [list(header)] + [list(row) for row in rows]
    if any(len(row) != len(header) for row in table):
        raise ValueError(f"every row needs {len(header)} cells, one per column")
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
