"""`report --latex`: a booktabs table whose structure, bold cells, caption and numbers are checked by parsing it,
and which compiles with pdflatex where one is installed."""
import re
import shutil
import subprocess

from reports import build
from reports.latex import escape, latex_table
from reports.markdown import SeedStats
from reports.paper_table import COLUMNS, DIGITS, PaperTable, paper_table
from tests.reports.test_paper_table import (DATASETS, ROWS, expected, merged,  # noqa: F401 - a fixture:
                                          studies)

CELL = re.compile(r"^(\\textbf\{\\boldmath )?(?:\$(-?\d+\.\d+)(?: \\pm (\d+\.\d+))?\$|--)\}?$")


def balanced(text: str) -> bool:
    depth = 0
    for i, c in enumerate(text):
        if c in "{}" and (i == 0 or text[i - 1] != "\\"):
            depth += 1 if c == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def body_rows(tex: str) -> list[list[str]]:
    """The cells of each line between \\midrule and \\bottomrule."""
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    return [[cell.strip() for cell in line.removesuffix(r"\\").split(" & ")] for line in body.strip().splitlines()]


def latex_of(studies, capsys) -> str:
    out = studies["root"] / "latex_out"
    assert build.main([str(studies["a"]), str(studies["b"]), "--out", str(out), "--latex",
                       "--label", f"{studies['b']}=study_b"]) == 0
    assert f"table: {out / 'table.tex'}" in capsys.readouterr().out
    return (out / "table.tex").read_text()


def test_latex_structure_bold_caption_and_numbers(studies, capsys):
    tex = latex_of(studies, capsys)
    assert balanced(tex)
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\label{tab:ltbench}", r"\begin{tabular}{l" +
                    "r" * 5 * len(DATASETS) + "}"):
        assert tex.count(command) == 1, command
    assert [escape(d) for d in DATASETS] == re.findall(r"\\multicolumn\{5\}\{c\}\{([^}]*)\}", tex)
    assert re.findall(r"\\cmidrule\(lr\)\{(\d+)-(\d+)\}", tex) == [("2", "6"), ("7", "11")]
    header = next(line for line in tex.splitlines() if line.startswith("Regime &"))
    assert header.removesuffix(r" \\").split(" & ")[1:] == ["Many", "Med.", "Few", "All", "PPT"] * len(DATASETS)
    rows = body_rows(tex)
    assert [r[0] for r in rows] == [escape(label) for label in sorted(ROWS)]
    columns = [(d, g) for d in DATASETS for g in COLUMNS]
    shown = {}
    for label, cells in zip(sorted(ROWS), rows):
        assert len(cells) == 1 + len(columns)
        for (dataset, group), cell in zip(columns, cells[1:]):
            bold, mean, sd = CELL.match(cell).groups()
            want = expected(studies["jobs"], label, dataset, group)
            if want is None:
                assert cell.endswith("--")
                continue
            digits = DIGITS.get(group, 1)  # PPT to 2 digits, accuracies to 1
            assert mean == f"{want[0]:.{digits}f}" and (sd == f"{want[1]:.{digits}f}" if want[1] is not None
                                                        else sd is None)
            shown[label, dataset, group] = (float(mean), bool(bold))
    for column in columns:
        values = {label: v for (label, *key), v in shown.items() if tuple(key) == column}
        if values:
            top = max(mean for mean, _ in values.values())
            assert {label for label, (mean, bold) in values.items() if bold} == \
                {label for label, (mean, _) in values.items() if mean == top}, column
    assert any(bold for _, bold in shown.values())
    assert not any(cell.startswith(r"\textbf") and "--" in cell for row in rows for cell in row)  # no bold dash
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert "Protocol: reference" in caption and "Backbones: RN50 (none), ltbench-tiny (none)" in caption
    assert r"linear\_probe [model=ltbench-tiny] (a+study\_b): 4" in caption  # seeds differ per row: each said
    assert r"\%" in caption and r"$\pm$" in caption and "±" not in tex


def test_latex_ties_are_all_bold_and_one_seed_has_no_pm(tmp_path, capsys):
    from tests.reports.test_rows import plan, result, write_jobs

    jobs = [result("linear_probe", few=12.0), result("lora", few=12.0), result("full", few=5.0)]
    write_jobs(tmp_path, jobs)
    plan(tmp_path, jobs)
    assert build.main([str(tmp_path), "--latex", str(tmp_path / "t.tex")]) == 0
    tex = (tmp_path / "t.tex").read_text()
    rows = {cells[0]: cells[1:] for cells in body_rows(tex)}
    assert rows[r"linear\_probe"][2] == rows["lora"][2] == r"\textbf{\boldmath $12.0$}"  # a tie: both bold
    assert rows["full"][2] == "$5.0$" and r"\pm" not in "".join(sum(rows.values(), []))
    assert "over one seed (no sd)" in tex


def test_special_characters_are_escaped():
    assert escape("a_b&c%$#{}~^\\<|>") == (r"a\_b\&c\%\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
                                           r"\textless{}\textbar{}\textgreater{}")


def test_latex_compiles(studies, tmp_path):
    tex = latex_table(paper_table(merged(studies)))
    odd = "my_regime [loss=50%&more, lr=1e-3] {#1} ~^\\"  # every special character in a row label
    special = latex_table(PaperTable([odd], ["data_set#2"], {(odd, "data_set#2", "all"): SeedStats(50.0, 1.5, 2)},
                                     {(odd, "data_set#2"): 2}, ["p&q"], ["m_1 (x$y)"]))
    assert balanced(tex) and balanced(special) and len(body_rows(special)[0]) == 1 + len(COLUMNS)
    if not shutil.which("pdflatex"):
        return  # parsed here and above; compiled where TeX is installed
    (tmp_path / "table.tex").write_text(tex)
    (tmp_path / "special.tex").write_text(special)
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}"
                                        "\\input{table.tex}\\input{special.tex}\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0
