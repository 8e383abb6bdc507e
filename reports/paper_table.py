"""The paper's table of a report: rows = the report's rows (one recipe of a regime each), column groups = data
sets × many/medium/few/all and PPT (bench.ppt), each cell mean ± sd over the row's seeds
(reports.markdown.seed_stats). Written as LaTeX (reports.latex) and as a wide CSV (`write_csv_wide`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.io import write_atomic

from .load import Run
from .markdown import SeedStats, seed_stats

GROUPS = {"many": "many", "medium": "medium", "few": "few", "all": "top1"}  # column group -> the table's metric
COLUMNS = {**GROUPS, "ppt": "ppt"}  # per data set: the accuracy groups (%), then V-PETL Bench's PPT beside them
DIGITS = {"ppt": 2}  # a column shown to other digits than the table's: PPT is a fraction of 1, as V-PETL Bench shows it


@dataclass
class PaperTable:
    rows: list[str]  # row labels (reports.load), sorted
    datasets: list[str]
    cells: dict[tuple[str, str, str], SeedStats]  # (row, data set, column) -> over seeds; absent: not run or no class
    seeds: dict[tuple[str, str], int]  # (row, data set) -> seeds run
    protocols: list[str]
    backbones: list[str]  # "model (pretrained)"


def paper_table(run: Run) -> PaperTable:
    """The table of `run`'s finished main jobs (grid variants have their own figures); empty without any."""
    main = run.main
    cells, seeds = {}, {}
    for (row, dataset), jobs in main.groupby(["row", "dataset"]):
        seeds[row, dataset] = jobs.seed.nunique()
        for column, metric in COLUMNS.items():
            stats = seed_stats(jobs[metric])
            if stats is not None:
                cells[row, dataset, column] = stats
    protocols = sorted({str(p) if pd.notna(p) else "not recorded" for p in main.protocol})
    backbones = sorted({f"{m} ({p})" for m, p in zip(main.model, main.pretrained)})
    return PaperTable(sorted(set(main.row)), sorted(set(main.dataset)), cells, seeds, protocols, backbones)


def wide_frame(table: PaperTable) -> pd.DataFrame:
    """One line per row: per data set its seeds, then `<data set>/<column>/mean` and `/sd` for the groups and PPT
    (empty: no value; sd empty with one seed)."""
    lines = []
    for row in table.rows:
        line = {"row": row}
        for dataset in table.datasets:
            line[f"{dataset}/seeds"] = table.seeds.get((row, dataset))
            for column in COLUMNS:
                stats = table.cells.get((row, dataset, column))
                line[f"{dataset}/{column}/mean"] = stats.mean if stats else float("nan")
                line[f"{dataset}/{column}/sd"] = stats.sd if stats else float("nan")
        lines.append(line)
    return pd.DataFrame(lines).astype({f"{d}/seeds": "Int64" for d in table.datasets})


def write_csv_wide(table: PaperTable, path: str | Path) -> None:
    write_atomic(Path(path), wide_frame(table).to_csv(index=False))
