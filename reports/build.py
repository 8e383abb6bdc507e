"""`python run_bench.py report RUN [RUN ...]`: report.html (self-contained) and report.pdf (one figure per page),
and on request the paper's table (reports.paper_table, reports.latex)."""
from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages

from bench.bootstrap import paired_interval
from bench.data.groups import FEW_MAX, ClassGroups
from bench.io import atomic_file
from bench.manifest import ManifestError
from bench.results import ResultFileError
from bench.plan import DEMO_DATASET, DEMO_REGIMES
from bench.protocols import PROVENANCE
from bench.registry import REGIMES

from .figures import (DATASET_FIGURES, RUN_FIGURES, _job_stats, backbone_share, class_accuracy,
                      data_wait_share, grid_heatmap, grid_paired_tests, paired_t_pvalue)
from .latex import write_latex
from .load import Run, load_run
from .markdown import interval_text, mean_sd, row_interval, run_markdown, untested_lines
from .merge import MergeError, check_out, merge_runs, run_labels
from .paper_table import paper_table, write_csv_wide
from .published import TOLERANCE, compare, coverage
from .remedies import derived_rows, remedies_section, wise_figure
from .selection import selection_section
from .statistics_figures import STATISTICS_FIGURES
from .sweep_figures import heavy_minus_light, sweep_axes, sweep_frame, sweep_table
from .verdict import light_rows, verdict

log = logging.getLogger(__name__)
SUMMARY = [("top1", "overall", True), ("many", "many", True), ("medium", "medium", True), ("few", "few", True),
           ("ppt", "PPT", True), ("trainable_params", "trainable", None),
           ("backbone_tuned_pct", "% backbone tuned", None), ("classifier_params", "classifier params", None),
           ("epochs", "epochs", None), ("total_s", "time s", False), ("data_wait_pct", "data wait %", None)]
PPT_TEXT = ("PPT: V-PETL Bench's performance-parameter trade-off (Xin et al., NeurIPS 2024), top-1 / 100 × "
            "exp(−log10(P / 10^7 + 1)) with P the trainable parameters of the backbone (the classifier not counted, "
            "as V-PETL Bench counts its linear probe as 0); 1 = perfect accuracy at no tuned parameter.")
STATISTICS_SECTION = "Feature statistics and few-shot accuracy"
OPTIONAL = ("data_wait_pct",)  # a summary column shown only where some job recorded it
INTERVALS = [("top1", "overall 95% CI"), ("few", "few 95% CI")]  # each placed after its metric's column
BALANCED = [("worst_class_acc", "worst class", True), ("hmean_acc", "harmonic mean", True),
            ("gmean_acc", "geometric mean", True), ("macro_f1", "macro-F1", True), ("error_rate", "error", False)]
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee;cursor:pointer}
td:first-child,td:nth-child(2){text-align:left}.best{font-weight:bold;background:#dfd}
.problems{color:#a00}.skipped{color:#666;font-style:italic}figure{margin:1.5em 0}
figcaption{font-style:italic;color:#444}img{max-width:100%}"""
SORT_SCRIPT = """document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',
function(){var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),
asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';var rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;var na=parseFloat(a),nc=parseFloat(c);
if(!isNaN(na)&&!isNaN(nc)){return asc?na-nc:nc-na;}return asc?String(a).localeCompare(c):String(c).localeCompare(a);});
rows.forEach(function(r){b.appendChild(r);});});});"""


def summary_table(run: Run, columns: list = SUMMARY, intervals: list = INTERVALS) -> pd.DataFrame:
    """One line per data set and row (one recipe of a regime): means over that row's seeds only, `seeds` = n;
    after each measured column (one with a best direction) its `<title> sd` over the seeds (ddof = 1, empty
    with one seed: no fake 0); and the 95 % intervals of `intervals`' metrics (reports.markdown.row_interval)."""
    ok = with_derived(run, run.main)
    if ok.empty:
        return pd.DataFrame()
    columns = [c for c in columns if c[0] not in OPTIONAL or ok[c[0]].notna().any()]
    groups = ok.groupby(["dataset", "row"])
    table = groups[[c for c, _, _ in columns]].mean()
    table.insert(0, "seeds", groups.seed.nunique())
    for metric, title in intervals:
        table.insert(table.columns.get_loc(metric) + 1, title,
                     [interval_text(row_interval(rows, metric), 2) or None for _, rows in groups])
    for metric, title, higher in columns:
        if higher is not None:
            table.insert(table.columns.get_loc(metric) + 1, f"{title} sd", groups[metric].std(ddof=1))
    return table.reset_index()


def with_derived(run: Run, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with the columns the report derives: `backbone_tuned_pct` (the backbone's share a regime tunes,
    classifier not counted; trainable_pct for results written before that split), `classifier_params` (None
    for those results) and `data_wait_pct` (mean over epochs of the share of step time spent waiting for data,
    in %; NaN where the history does not record it)."""
    classifier = rows.get("classifier_params")
    return rows.assign(
        backbone_tuned_pct=backbone_share(rows),
        classifier_params=pd.to_numeric(classifier, errors="coerce") if classifier is not None else np.nan,
        data_wait_pct=rows.job_id.map(data_wait_share(run, rows.job_id)) if len(rows) else np.nan)


def _titled(table: pd.DataFrame, columns: list) -> str:
    """`table` under its columns' titles, the best value per data set marked."""
    renamed = table.rename(columns={"row": "regime", **{c: t for c, t, _ in columns}})
    return html_table(renamed, {t: h for _, t, h in columns if h is not None}, group="dataset")


def published_section(run: Run) -> str:
    """The run's rows against the papers' numbers (reports.published); empty when the run has no main row."""
    table = compare(run)
    if table.empty:
        return ""
    return (f"<h2>Published numbers</h2><p>Each row against the number the LIFT or LIFT+ paper published for its "
            f"data set, regime and backbone (open_clip name and weights), from reports/published_numbers.csv with "
            f"the source of each: measured is the mean over the row's seeds, difference = measured − published, "
            f"pass within ±{TOLERANCE:g} points. A row whose recipe, activation or data options are not the "
            f"paper's says what differs instead. {html.escape(coverage())}</p>" + html_table(table))


def _cell(value, fmt="{:.2f}") -> tuple[str, str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–", ""
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}", str(value)
    return (fmt.format(value) if isinstance(value, (float, np.floating)) else html.escape(str(value))), str(value)


def html_table(frame: pd.DataFrame, best: dict[str, bool] | None = None, group: str | None = None) -> str:
    """A sortable table; per `group` (data set) the best value of each column in `best` is marked."""
    best = best or {}
    marks = set()
    if group and not frame.empty:
        for column, higher in best.items():
            for _, rows in frame.groupby(group):
                values = rows[column].dropna()
                if not values.empty:
                    marks.add((values.idxmax() if higher else values.idxmin(), column))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for index, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            text, value = _cell(row[column])
            cls = ' class="best"' if (index, column) in marks else ""
            cells.append(f'<td{cls} data-v="{html.escape(value)}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _attempt(problems: list[str], what: str, make, *args):
    """`make(*args)`, or None with a line in `problems` when it raises: one bad part never costs the report."""
    figures = set(plt.get_fignums())
    try:
        return make(*args)
    except ResultFileError as exc:  # a damaged file of the run folder: no traceback, named once (Run.damaged)
        problems.append(f"{what} could not be made: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure of one part is reported, the rest still rendered
        log.exception("report: %s failed", what)
        for number in set(plt.get_fignums()) - figures:
            plt.close(number)
        problems.append(f"{what} could not be made: {type(exc).__name__}: {exc}")
        return None


def _drawn(make, *args) -> tuple | None:
    """(figure, caption, PNG): rendered here, so that a figure that cannot be saved fails inside the guard;
    (None, why, None) for a figure with nothing to show (a `Skip`, or None)."""
    made = make(*args)
    if made is None or isinstance(made, str):
        what = getattr(make, "__name__", "figure")
        return None, str(made) if made else f"{what}: nothing to show.", None
    return (*made, _png(made[0]))


def collect_figures(run: Run, problems: list[str]) -> list[tuple[str, str, object, str, bytes]]:
    """(section, file stem, figure, caption, PNG) in report order; a figure that cannot be drawn is a line in
    `problems` instead, and one with nothing to show is (section, "", None, why, None)."""
    out = []
    if run.main.empty:
        out.append(("Accuracy and cost", "", None, "No finished job of a regime's own recipe, so the accuracy and "
                    "cost figures are not drawn" + (" (the grids' jobs have their own figures below)."
                                                    if run.grids else "."), None))
    for section, makers in (("Accuracy and cost", RUN_FIGURES), (STATISTICS_SECTION, STATISTICS_FIGURES)):
        for make in makers if not run.main.empty else []:
            made = _attempt(problems, f"figure {make.__name__}", _drawn, make, run)
            if made:
                out.append((section, make.__name__, *made))
    for dataset in sorted(set(run.main.dataset)):
        for make in DATASET_FIGURES:
            made = _attempt(problems, f"figure {make.__name__} ({dataset})", _drawn, make, run, dataset)
            if made:
                out.append((f"Class-conditional features: {dataset}", f"{make.__name__}-{dataset}", *made))
    for dataset in sorted(set(derived_rows(run).dataset)):
        made = _attempt(problems, f"figure wise_figure ({dataset})", _drawn, wise_figure, run, dataset)
        if made and made[0] is not None:
            out.append((f"Remedies: {dataset}", f"wise-{dataset}", *made))
    for grid in run.grids:
        made = _attempt(problems, f"heatmap of grid {grid['name']}", _drawn, grid_heatmap, run, grid)
        if made:
            out.append((f"Ablation grid: {grid['name']}", f"grid-{grid['name']}", *made))
        if sweep_axes(grid):  # a data-set axis: where heavy fine-tuning starts to hurt (reports.sweep_figures)
            made = _attempt(problems, f"heavy − light figure of grid {grid['name']}", _drawn, heavy_minus_light, run,
                            grid)
            if made:
                out.append((f"Ablation grid: {grid['name']}", f"sweep-{grid['name']}", *made))
    numbered, i = [], 0
    for section, stem, fig, caption, png in out:
        if fig is not None:
            i += 1
            stem = f"{i:02d}-{stem}"
        numbered.append((section, stem, fig, caption, png))
    return numbered


def few_shot_gaps(run: Run, dataset: str) -> dict[str, float | None]:
    """Per row, the few-shot pairwise-spread gap averaged over its seeds (None where no job measured it)."""
    ok = run.main
    gaps = {}
    for row, rows in ok[ok.dataset == dataset].groupby("row"):
        values = [v for v in map(run.few_shot_gap, rows.job_id) if v is not None]
        gaps[row] = float(np.mean(values)) if values else None
    return gaps


def difference_reference(rows: pd.DataFrame) -> str | None:
    """The row every other one is compared with: the best lightweight row on mean few-shot accuracy, the best
    row when there is no lightweight one (the papers' question: does a light regime beat the rest on the tail)."""
    few = rows.groupby("row").few.mean().dropna()
    light = [r for r in light_rows(rows) if r in few.index]
    return None if few.empty else (few[light] if light else few).idxmax()


def _seed_pairs(rows: pd.DataFrame, base: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Few-shot accuracies of two rows on the seeds both measured, paired by seed."""
    a, b = (r.dropna(subset=["few"]).set_index("seed").few for r in (rows, base))
    seeds = sorted(set(a.index) & set(b.index))
    return a[seeds].to_numpy(float), b[seeds].to_numpy(float)


def _class_interval(run: Run, rows: pd.DataFrame, base: pd.DataFrame) -> list[float] | None:
    """Bootstrap 95 % interval of few(rows) − few(base) over the few-shot test classes, the same classes drawn
    for both (bench.bootstrap.paired_interval) on each row's per-class accuracy averaged over its seeds; None
    when the rows ran on different splits or a job lacks per-class accuracies."""
    jobs = pd.concat([rows, base])
    if jobs.split_fingerprint.nunique(dropna=False) != 1:
        return None
    counts = run.result(base.job_id.iloc[0]).dataset.get("train_class_counts")
    try:
        a, b = (class_accuracy(run, r.job_id).mean() for r in (rows, base))
    except (KeyError, TypeError):  # a result without per-class accuracies
        return None
    if counts is None or not len(a) == len(b) == len(counts):
        return None
    few = ClassGroups.from_counts(counts).few
    return paired_interval(a.to_numpy()[few], b.to_numpy()[few])


def few_shot_interval(run: Run, dataset: str):
    """(row a, row b) -> the class-bootstrap interval of few(a) − few(b) on `dataset` (`_class_interval`)."""
    rows = run.main[run.main.dataset == dataset]
    return lambda a, b: _class_interval(run, rows[rows.row == a], rows[rows.row == b])


def demo_scope(run: Run) -> str | None:
    """What the embedded demo left out: its default regimes are a part of the registry's, each at its reference
    recipe, so that the first command takes about a minute on 2 cores."""
    ran = set(run.main[run.main.dataset == DEMO_DATASET].regime)
    left = sorted(set(REGIMES.names()) - ran)
    if not ran or not left or not ran <= set(DEMO_REGIMES):
        return None
    return (f"The embedded demo ran {len(ran)} of ltbench's {len(REGIMES.names())} regimes, the default of a "
            f"{DEMO_DATASET}-only run: the papers' comparison and the text-side regimes that fit in about a minute "
            f"on 2 cores, each at its reference recipe (nothing is scaled down). Not run: {', '.join(left)}; "
            f"`python run_bench.py --regimes all` runs them too (CoOp's 50 reference epochs alone take about 4.5 "
            f"minutes on 2 cores).")


def regime_differences(run: Run, dataset: str) -> pd.DataFrame:
    """Each row of `dataset` against `difference_reference` on few-shot accuracy: difference of the means over
    seeds, the paired t-test over the seeds both share (p only with ≥ 2) and the class bootstrap interval;
    `excludes 0` marks an interval that does."""
    rows = run.main[run.main.dataset == dataset]
    reference = difference_reference(rows)
    if reference is None:
        return pd.DataFrame()
    base = rows[rows.row == reference]
    out = []
    for row, jobs in rows[rows.row != reference].dropna(subset=["few"]).groupby("row"):
        a, b = _seed_pairs(jobs, base)
        interval = _class_interval(run, jobs, base)
        out.append({"regime": row, "reference": reference, "seeds": jobs.seed.nunique(), "few": jobs.few.mean(),
                    "few sd": jobs.few.std(ddof=1), "difference": jobs.few.mean() - base.few.mean(),
                    "paired seeds": len(a), "paired t-test p": paired_t_pvalue(a, b) if len(a) >= 2 else None,
                    "difference 95% CI": interval_text(interval, 2) or None,
                    "excludes 0": None if interval is None else ("yes" if interval[0] > 0 or interval[1] < 0
                                                                 else "no")})
    return pd.DataFrame(out).sort_values("difference", ascending=False) if out else pd.DataFrame()


def differences_section(run: Run) -> str:
    """Per data set, the rows' few-shot accuracy against the reference row, with a paired test and an interval."""
    parts = []
    for dataset in sorted(set(run.main.dataset)):
        table = regime_differences(run, dataset)
        if table.empty:
            continue
        reference = table.reference.iloc[0]
        base = run.main[(run.main.dataset == dataset) & (run.main.row == reference)]
        p = table["paired t-test p"].map(lambda v: None if v is None or np.isnan(v) else f"{v:.3g}")
        parts.append(f"<h3>{html.escape(dataset)}: against {html.escape(reference)} (few {mean_sd(base.few, '.2f')}, "
                     f"n = {base.seed.nunique()})</h3>"
                     + html_table(table.drop(columns="reference").assign(**{"paired t-test p": p})))
    if not parts:
        return ""
    return ("<h2>Differences between regimes</h2><p>Few-shot test accuracy (%) of each row against one reference "
            "row per data set: the best lightweight row on mean few-shot accuracy (the best row when none is "
            "lightweight). few: mean ± sd over the row's seeds (sd ddof = 1, none with one seed); difference = "
            "row − reference, each a mean over its own seeds. paired t-test p: two-sided paired t-test "
            "(scipy.stats.ttest_rel) over the seeds both rows ran, paired by seed, given only with ≥ 2 such seeds "
            "(paired seeds = n; with n = 2 it has a single degree of freedom and says little; a Wilcoxon "
            "signed-rank test cannot reach p < 0.05 below 6 pairs, hence the t-test). difference 95% CI: "
            "percentile bootstrap (1,000 resamples, fixed seed) of the difference over the few-shot test classes, "
            "the same classes drawn for both rows since they share the test set, on each row's per-class "
            "accuracy averaged over its seeds; results keep per-class, not per-image, correctness, so images "
            "are not resampled (class-to-class variation is what the interval measures). excludes 0 = yes marks a "
            "difference whose interval excludes 0. The reference is chosen on these same numbers and nothing is "
            "corrected for multiple comparisons.</p>" + "".join(parts))


def provenance(run: Run) -> list[str]:
    """Under which protocol the shown jobs ran and which split chose their hyper-parameters, as their plans
    recorded it (older folders: that it is not recorded)."""
    if run.manifest is None:
        return ["This run folder has no manifest.json (written before plans were recorded): the protocol and how "
                "the hyper-parameters were chosen are not recorded; main jobs and lightweight regimes follow "
                "today's registry."]
    shown = set(run.table.job_id)
    sources: dict[tuple[str, str], set[str]] = {}
    for plan in run.manifest.plans:
        sources.setdefault((plan.protocol, plan.hparam_source), set()).update(shown & set(plan.job_ids))
    lines = [f"Protocol {protocol} ({len(ids)} jobs shown): hyper-parameters from {source}."
             for (protocol, source), ids in sources.items() if ids]
    return lines or [f"manifest.json records {len(run.manifest.plans)} plans; no job of theirs is shown."]


KEY_FIELDS = ("epochs", "lr", "tte")  # always shown; other fields only where something set them
DEFAULT_SOURCE = "default: LIFT-plus's config (utils/config.py, configs/*/*.yaml)"  # ltbench's own values name theirs


def hyperparameters(run: Run) -> pd.DataFrame:
    """Per data set and row: under a paper protocol the script line its recipe is (or that none ran it), then
    the key hyper-parameters and every field a protocol, --set, --epochs, a grid or one of ltbench's own defaults
    set, with where its value came from (the job's `hparam_sources`; anything else is LIFT-plus's default)."""
    rows = []
    for (dataset, row), jobs in run.main.groupby(["dataset", "row"]):
        result = run.result(jobs.job_id.iloc[0])
        recipe = result.config["recipe"]
        sources = result.hparam_sources or {}
        if PROVENANCE in sources:
            rows.append({"dataset": dataset, "regime": row, "setting": PROVENANCE,
                         "value": result.config.get("protocol"), "source": sources[PROVENANCE]})
        for field in [f for f in recipe if f in KEY_FIELDS or f in sources]:
            rows.append({"dataset": dataset, "regime": row, "setting": field, "value": recipe[field],
                         "source": sources.get(field, DEFAULT_SOURCE)})
    return pd.DataFrame(rows)


def build_report(run_dir: str | Path, include_all: bool = False) -> tuple[Path, Path]:
    """report.html and report.pdf for any run folder; with `include_all`, stale results and results of no plan
    are shown too (reports.load)."""
    return write_report(load_run(run_dir, include_all))


def write_report(run: Run) -> tuple[Path, Path]:
    """report.html and report.pdf for a run folder as `load_run` read it; afterwards `run.damaged` names each of
    its files that turned out missing or damaged (the parts that needed one are named under "What is missing")."""
    run_dir = run.path
    problems = list(run.problems)
    figures = collect_figures(run, problems)
    findings = {dataset: _attempt(problems, f"findings for {dataset}",
                                  lambda: verdict(run.main, dataset, few_shot_gaps(run, dataset),
                                                  few_shot_interval(run, dataset))) or []
                for dataset in sorted(set(run.main.dataset))}
    table = summary_table(run)
    grid_tests = {grid["name"]: _attempt(problems, f"paired t-tests of grid {grid['name']}", grid_paired_tests,
                                         run, grid) for grid in run.grids}
    sweeps = {f"sweep-{grid['name']}": _attempt(problems, f"heavy − light table of grid {grid['name']}", sweep_table,
                                                run, grid) for grid in run.grids if sweep_axes(grid)}
    tail = _attempt(problems, "tail-class tables", worst_tail_classes, run) or ""
    settings = _attempt(problems, "the hyper-parameter table", hyperparameters, run)
    published = _attempt(problems, "the published-numbers table", published_section, run) or ""
    differences = _attempt(problems, "the differences between regimes", differences_section, run) or ""
    selection = _attempt(problems, "the model-selection table", selection_section, run) or ""
    remedies = _attempt(problems, "the remedies section", remedies_section, run) or ""
    parts = [f"<h1>ltbench report: {html.escape(run_dir.name)}</h1>",
             f"<p>{len(run.ok)} finished jobs of {len(run.table)} shown; data sets: "
             f"{html.escape(', '.join(sorted(set(run.table.dataset.dropna()))) or 'none')}. "
             f"{html.escape(' '.join(provenance(run)))}</p>"]
    if run.sources:
        parts.append(f"<p>Merged from {len(run.sources)} run folders: "
                     f"{html.escape('; '.join(f'{label} = {path}' for label, path in run.sources.items()))}. A job "
                     f"found in several is counted once; each row names, in parentheses, the runs its jobs come "
                     f"from.</p>")
    scope = demo_scope(run)
    if scope:
        parts.append(f"<p>{html.escape(scope)}</p>")
    if problems:
        parts.append('<h2>What is missing</h2><ul class="problems">' +
                     "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>")
    parts.append("<h2>Findings</h2>")
    if not findings:
        parts.append("<p>No finished job of a regime's own recipe, so there is nothing to compare.</p>")
    for dataset, lines in findings.items():
        parts.append(f"<h3>{html.escape(dataset)}</h3><ul>" +
                     "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
    if not table.empty:
        parts.append("<h2>Summary</h2><p>Test accuracy (%), mean over seeds (seeds = n); each measured column's "
                     "sd column is its sample standard deviation over those seeds (ddof = 1; – with one seed); one "
                     "line per recipe of a regime (the brackets name what sets its recipe apart); best per data "
                     f"set in bold. {html.escape(PPT_TEXT)}</p>")
        parts.append(_titled(table, SUMMARY))
        parts += [f'<p class="problems">{html.escape(dataset)}: {html.escape(line)}</p>'
                  for dataset in sorted(set(run.main.dataset)) for line in untested_lines(run, dataset)]
        parts.append("<p>The 95 % intervals: a percentile bootstrap over the row's seeds when it has several, else "
                     "over the job's test images (resampled within each class); 1,000 resamples, fixed seed.</p>")
        parts.append("<h3>Class-balanced metrics</h3><p>Test split, mean and sd over seeds as above (LIFT's "
                     "evaluator, over the classes of the test split): the worst class's accuracy, the harmonic mean "
                     "of the class accuracies (0 % counted as 0.001 %), their geometric mean (0 when a class is at "
                     "0 %), macro-F1 and the error rate (%).</p>")
        parts.append(_titled(summary_table(run, BALANCED, []), BALANCED))
    parts.append(differences)
    parts.append(selection)
    parts.append(remedies)
    parts.append(published)
    if settings is not None and not settings.empty:
        parts.append("<h2>Hyper-parameters and where they come from</h2>" + html_table(settings))
    section = None
    for name, stem, fig, caption, png in figures:
        if name != section:
            parts.append(f"<h2>{html.escape(name)}</h2>")
            section = name
        if fig is None:
            parts.append(f'<p class="skipped">{html.escape(caption)}</p>' + _sweep_numbers(sweeps, stem))
            continue
        with atomic_file(run_dir / "figures" / f"{stem}.png") as fh:
            fh.write(png)
        parts.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        parts.append(_sweep_numbers(sweeps, stem.partition("-")[2]))  # a sweep figure's numbers, under it
    for name, tests in grid_tests.items():
        if tests is not None:
            parts.append(f"<h3>{html.escape(name)}: paired t-test over seeds against the first point</h3>")
            parts.append(html_table(tests))
    parts.append(tail)
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ltbench report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}<script>{SORT_SCRIPT}</script></body></html>")
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    with atomic_file(html_path, "w") as fh:
        fh.write(page)
    with atomic_file(pdf_path) as fh, PdfPages(fh) as pdf:
        cover = plt.figure(figsize=(8.3, 11.7))
        text = [f"ltbench report: {run_dir.name}", ""] + provenance(run) + [""] + problems[:20] + [""]
        for dataset, lines in findings.items():
            text += [dataset] + [f"  {line}" for line in lines] + [""]
        skipped = [caption for _, _, fig, caption, _ in figures if fig is None]
        if skipped:
            text += ["Figures not drawn:"] + [f"  {line}" for line in skipped]
        cover.text(0.05, 0.95, "\n".join(text), va="top", fontsize=8, wrap=True, family="monospace")
        pdf.savefig(cover)
        plt.close(cover)
        for _, stem, fig, caption, _ in figures:
            if fig is None:
                continue
            fig.text(0.01, 0.005, caption, fontsize=7, va="bottom", wrap=True)
            try:
                pdf.savefig(fig)
            except Exception as exc:  # noqa: BLE001 - drawn as PNG already; the PDF says what it lacks
                log.exception("report: PDF page of %s failed", stem)
                page = plt.figure(figsize=(8.3, 11.7))
                page.text(0.05, 0.95, f"figure {stem} could not be drawn in the PDF: {type(exc).__name__}: {exc}",
                          va="top", fontsize=8, wrap=True)
                pdf.savefig(page)
                plt.close(page)
    for _, _, fig, _, _ in figures:
        if fig is not None:
            plt.close(fig)
    return html_path, pdf_path


def _sweep_numbers(sweeps: dict, stem: str) -> str:
    """The table of the heavy − light figure `stem` (sweep-NAME), or "" for another figure."""
    table = sweeps.get(stem)
    if not isinstance(table, pd.DataFrame):
        return ""
    return (f"<h3>{html.escape(stem[len('sweep-'):])}: few-shot accuracy (%), heavy − light</h3>"
            + html_table(sweep_frame(table)))


def worst_tail_classes(run: Run, n: int = 10) -> str:
    """The few-shot classes whose feature gap is largest under full fine-tuning (each of its rows), by name
    (escaped)."""
    parts = []
    for dataset in sorted(set(run.main.dataset)):
        rows = run.main[(run.main.dataset == dataset) & (run.main.regime == "full")]
        for row, jobs in rows.groupby("row"):
            stats = next((s for s in (_job_stats(run, j, ("train_count", "gap_pairwise")) for j in jobs.job_id)
                          if s is not None), None)  # the row's first job with statistics, as before
            if stats is not None:
                parts.append(_tail_table(run, dataset, row, jobs.job_id.iloc[0], stats, n))
    return "".join(parts)


def _tail_table(run: Run, dataset: str, row: str, job: str, s: dict, n: int) -> str:
    names = run.result(job).dataset.get("classnames") or []
    tail = np.flatnonzero(s["train_count"] < FEW_MAX)
    tail = tail[~np.isnan(s["gap_pairwise"][tail])]
    order = tail[np.argsort(-s["gap_pairwise"][tail])][:n]
    frame = pd.DataFrame({"class": [names[c] if c < len(names) else c for c in order],
                          "train images": s["train_count"][order], "gap (pairwise)": s["gap_pairwise"][order]})
    where = "full fine-tuning" + row[len("full"):]  # `full fine-tuning [epochs=1]` when full has several rows
    return (f"<h3>{html.escape(dataset)}: tail classes with the largest gap under {html.escape(where)}</h3>"
            + html_table(frame))


TABLE_FILES = {"latex": ("table.tex", ".tex"), "csv_wide": ("table_wide.csv", ".csv")}  # default name, suffix


def table_files(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """The paper-table files asked for (option -> file; default name in `out`). Raises MergeError for a FILE of
    the wrong suffix, which is also what argparse makes of `--latex RUN ...` (the run taken for the file)."""
    files = {}
    for option, (default, suffix) in TABLE_FILES.items():
        given = getattr(args, option)
        if given is None:
            continue
        if given and not given.endswith(suffix):
            flag = "--" + option.replace("_", "-")
            raise MergeError(f"{flag} {given}: the file must end in {suffix} (put {flag} after the run folders, or "
                             f"give {flag} a {suffix} file)")
        files[option] = Path(given) if given else out / default
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltbench report", description="Write report.html and report.pdf "
                                     "for a run folder, or for several run folders merged into one (--out); "
                                     "--latex and --csv-wide add the paper's table.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN",
                        help="run folders (the --out of benchmarks); several are merged: a job found in two of them "
                             "counts once, and each row names its runs")
    parser.add_argument("--out", metavar="DIR",
                        help="the folder the report goes to: required with several runs (not a run folder); "
                             "default: the run folder")
    parser.add_argument("--label", action="append", default=[], metavar="RUN=NAME",
                        help="the name of run folder RUN in the rows of a merged report (repeat per run; default: "
                             "the folder's name)")
    parser.add_argument("--latex", nargs="?", const="", metavar="FILE.tex",
                        help="also write the paper's table as a booktabs LaTeX table to \\input (needs "
                             "\\usepackage{booktabs}); default file: table.tex in the report's folder")
    parser.add_argument("--csv-wide", nargs="?", const="", metavar="FILE.csv",
                        help="also write that table as CSV, one line per row (default: table_wide.csv in the "
                             "report's folder)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the results as Markdown tables, mean ± sd over seeds")
    parser.add_argument("--all", dest="include_all", action="store_true",
                        help="also show stale results (their data changed after they were planned) and results "
                             "that no plan in manifest.json lists; the report says how many")
    args = parser.parse_args(argv)
    try:
        labels = run_labels(args.run_dirs, args.label)
        check_out(args.run_dirs, args.out)
        files = table_files(args, Path(args.out or args.run_dirs[0]))
        runs = [load_run(run_dir, args.include_all) for run_dir in args.run_dirs]
        run = merge_runs(runs, labels, args.out) if args.out else runs[0]
        table = paper_table(run) if files else None
        if table is not None and not table.rows:
            raise MergeError(f"{' and '.join('--' + f.replace('_', '-') for f in files)}: no finished job of a "
                             f"regime's own recipe, so there is no table to write: run the regimes first (grid "
                             f"variants are in the report's grid figures)")
        html_path, pdf_path = write_report(run)
        if args.markdown:
            print(run_markdown(run))
    except (FileNotFoundError, ManifestError, MergeError) as exc:
        print(f"ltbench report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {html_path} and {pdf_path}")
    source = "; ".join(f"{label} = {path}" for label, path in run.sources.items()) or str(run.path)
    for option, path in files.items():
        if option == "latex":
            write_latex(table, path, source)
        else:
            write_csv_wide(table, path)
        print(f"table: {path}")
    for line in run.damaged.values():  # written without what needs them; the files are bad input: exit 2
        print(f"ltbench report: error: {line}", file=sys.stderr)
    return 2 if run.damaged else 0
