"""The paper table (reports.paper_table) as a booktabs `table` to `\\input` into a paper (the preamble needs
`\\usepackage{booktabs}`): best per column in bold, ties all bold, the seeds, protocol(s) and backbone(s) in
the caption."""
from __future__ import annotations

from pathlib import Path

from bench.io import write_atomic

from .markdown import SeedStats
from .paper_table import COLUMNS, DIGITS, PaperTable

HEADINGS = {"many": "Many", "medium": "Med.", "few": "Few", "all": "All", "ppt": "PPT"}
SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
           ">": r"\textgreater{}", "|": r"\textbar{}"}
LABEL = "tab:ltbench"
EMPTY = "--"  # an en dash: a group without a class, or a data set the row did not run


def escape(text: str) -> str:
    """`text` as LaTeX prints it: regime, data-set and backbone names hold _ and other special characters."""
    return "".join(SPECIAL.get(c, c) for c in str(text))


def _number(stats: SeedStats, digits: int) -> str:
    mean = f"{stats.mean:.{digits}f}"
    return mean if stats.n == 1 else rf"{mean} \pm {stats.sd:.{digits}f}"


def _best(table: PaperTable, digits: int) -> set[tuple[str, str, str]]:
    """Per column the cells whose shown mean is the highest (all of them on a tie)."""
    marked = set()
    for dataset in table.datasets:
        for column in COLUMNS:
            shown = {key: round(s.mean, DIGITS.get(column, digits)) for key, s in table.cells.items()
                     if key[1:] == (dataset, column)}
            marked |= {key for key, value in shown.items() if value == max(shown.values())}
    return marked


def _seeds(table: PaperTable) -> str:
    """How many seeds the cells average: one count for all, or each row's (per data set where they differ)."""
    counts = set(table.seeds.values())
    if len(counts) == 1:
        n = counts.pop()
        return "one seed (no sd)" if n == 1 else f"{n} seeds"
    rows = []
    for row in table.rows:
        runs = {d: n for (r, d), n in table.seeds.items() if r == row}
        same = len(set(runs.values())) == 1
        rows.append(f"{row}: " + (str(next(iter(runs.values()))) if same else
                                  ", ".join(f"{n} on {d}" for d, n in runs.items())))
    return f"each row's seeds ({'; '.join(rows)}; one seed shows its mean alone)"


def caption(table: PaperTable) -> str:
    """What the table shows, over how many seeds, under which protocol(s) and backbone(s)."""
    protocols, backbones = ", ".join(table.protocols), ", ".join(table.backbones)
    text = escape(f"Test accuracy (%) on the many-, medium- and few-shot classes and on all classes, and PPT, "
                  f"V-PETL Bench's performance-parameter trade-off (top-1 as a fraction times exp(-log10(P/1e7 + 1)), "
                  f"P the trainable backbone parameters, classifier not counted): mean ± sample "
                  f"sd (ddof = 1) over {_seeds(table)}. Best per column in bold; – where the data set has no class "
                  f"in the group or the row did not run on it. Protocol{'s' * (len(table.protocols) > 1)}: "
                  f"{protocols}. Backbone{'s' * (len(table.backbones) > 1)}: {backbones}.")
    return text.replace("±", r"$\pm$").replace("–", EMPTY)


def latex_table(table: PaperTable, digits: int = 1, source: str = "") -> str:
    """The `table` environment; `source` (which runs) goes into its leading comment."""
    best = _best(table, digits)
    width = len(COLUMNS)
    lines = [f"% ltbench report{' of ' + source if source else ''}: a booktabs table; the paper's preamble needs "
             f"\\usepackage{{booktabs}}, and \\input{{FILE}} places it.",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{caption(table)}}}", rf"\label{{{LABEL}}}",
             r"\begin{tabular}{l" + "r" * width * len(table.datasets) + "}", r"\toprule",
             " & ".join([""] + [rf"\multicolumn{{{width}}}{{c}}{{{escape(d)}}}" for d in table.datasets]) + r" \\",
             " ".join(rf"\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(table.datasets))),
             " & ".join(["Regime"] + [HEADINGS[c] for _ in table.datasets for c in COLUMNS]) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = [escape(row)]
        for dataset in table.datasets:
            for column in COLUMNS:
                stats = table.cells.get((row, dataset, column))
                number = f"${_number(stats, DIGITS.get(column, digits))}$" if stats else EMPTY
                cells.append(rf"\textbf{{\boldmath {number}}}" if (row, dataset, column) in best else number)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_latex(table: PaperTable, path: str | Path, source: str = "") -> None:
    write_atomic(Path(path), latex_table(table, source=source))
