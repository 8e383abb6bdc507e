"""The paper's table of a report: rows = the report's rows (one recipe of a regime each), column groups = data
sets × many/medium/few/all, each cell mean ± sd over the row's seeds (reports.markdown.seed_stats). Written as
LaTeX (reports.latex) and as a wide CSV (`write_csv_wide`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.io import write_atomic

from .load import Run
from .markdown import SeedStats, seed_stats

GROUPS = {"many": "many", "medium": "medium", "few": "few", "all": "top1"}  # column group -> the table's metric


@dataclass
class PaperTable:
    rows: list[str]  # row labels (reports.load), sorted
    datasets: list[str]
    cells: dict[tuple[str, str, str], SeedStats]  # (row, data set, group) -> over seeds; absent: not run or no class
    seeds: dict[tuple[str, str], int]  # (row, data set) -> seeds run
    protocols: list[str]
    backbones: list[str]  # "model (pretrained)"


def paper_table(run: Run) -> PaperTable:
    """The table of `run`'s finished main jobs (grid variants have their own figures); empty without any."""
    main = run.main
    cells, seeds = {}, {}
    for (row, dataset), jobs in main.groupby(["row", "dataset"]):
        seeds[row, dataset] = jobs.seed.nunique()
        for group, metric in GROUPS.items():
            stats = seed_stats(jobs[metric])
            if stats is not None:
                cells[row, dataset, group] = stats
    protocols = sorted({str(p) if pd.notna(p) else "not recorded" for p in main.protocol})
    backbones = sorted({f"{m} ({p})" for m, p in zip(main.model, main.pretrained)})
    return PaperTable(sorted(set(main.row)), sorted(set(main.dataset)), cells, seeds, protocols, backbones)


def wide_frame(table: PaperTable) -> pd.DataFrame:
    """One line per row: per data set its seeds, then `<data set>/<group>/mean` and `/sd` (empty: no value; sd
    empty with one seed)."""
    lines = []
    for row in table.rows:
        line = {"row": row}
        for dataset in table.datasets:
            line[f"{dataset}/seeds"] = table.seeds.get((row, dataset))
            for group in GROUPS:
                stats = table.cells.get((row, dataset, group))
                line[f"{dataset}/{group}/mean"] = stats.mean if stats else float("nan")
                line[f"{dataset}/{group}/sd"] = stats.sd if stats else float("nan")
        lines.append(line)
    return pd.DataFrame(lines).astype({f"{d}/seeds": "Int64" for d in table.datasets})


def write_csv_wide(table: PaperTable, path: str | Path) -> None:
    write_atomic(Path(path), wide_frame(table).to_csv(index=False))
