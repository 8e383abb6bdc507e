"""The feature statistics (bench.statistics: Fréchet distance, NC1, linear CKA) against few-shot accuracy.

One point per main job, a panel per data set and statistic, Spearman's ρ in each: whether a statistic tracks how
much a regime gains or loses on the tail. The findings (reports.verdict) name a statistic only where ρ carries it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from .figures import Skip, backbone_share, row_colour  # noqa: E402
from .load import Run  # noqa: E402

# results.csv's statistic columns (bench.job_result.STATISTIC_COLUMNS) as the axes name them
STATISTICS = {"frechet": "Fréchet train/test (class mean)", "frechet_few": "Fréchet train/test (few-shot)",
              "nc1_train": "NC1, training split", "nc1_test": "NC1, test split",
              "cka_train": "CKA vs pretrained, train", "cka_test": "CKA vs pretrained, test",
              "cka_test_few": "CKA vs pretrained, few-shot test"}
MIN_JOBS, LEVEL = 5, 0.05  # a finding needs at least this many jobs and p below this
KINDS = [("light", "o", "light (parameter-efficient)"), ("heavy", "s", "heavy (tunes the backbone)"),
         ("frozen", "^", "backbone not tuned")]


def _numeric(values) -> pd.Series:
    return pd.to_numeric(pd.Series(values), errors="coerce")


def few_shot_target(rows: pd.DataFrame) -> tuple[pd.Series, float | None]:
    """Per job of one data set its few-shot accuracy less the zero-shot row's (mean over its seeds; the first
    zero-shot row by name) when a zero-shot job ran, else the few-shot accuracy; and that zero-shot accuracy."""
    few = _numeric(rows.few)
    zero_shot = rows[(rows.regime == "zero_shot") & few.notna()]
    if zero_shot.empty:
        return few, None
    first = sorted(set(zero_shot.row))[0]
    base = float(few[zero_shot.index[zero_shot.row == first]].mean())
    return few - base, base


def target_words(base: float | None) -> str:
    """What `few_shot_target` is, in words."""
    return "few-shot accuracy" if base is None else f"few-shot gain over zero-shot ({base:.1f}%)"


def correlations(rows: pd.DataFrame) -> pd.DataFrame:
    """Per statistic the jobs of one data set that have it (n), and Spearman's ρ and p against `few_shot_target`
    (NaN below 3 jobs or when a side has no spread)."""
    target, _ = few_shot_target(rows)
    out = []
    for column in STATISTICS:
        values = _numeric(rows.get(column, pd.Series(np.nan, index=rows.index)))
        both = values.notna() & target.notna()
        rho = p = np.nan
        if both.sum() >= 3 and values[both].nunique() > 1 and target[both].nunique() > 1:
            rho, p = spearmanr(values[both], target[both])
        out.append({"statistic": column, "n": int(both.sum()), "rho": float(rho), "p": float(p)})
    return pd.DataFrame(out).set_index("statistic")


def _kind(rows: pd.DataFrame) -> pd.Series:
    """light (the manifest's parameter-efficient flag), heavy (tunes the backbone otherwise) or frozen."""
    share = backbone_share(rows)
    return pd.Series(np.where(rows.lightweight, "light", np.where(share > 0, "heavy", "frozen")), index=rows.index)


def _rho_text(r: pd.Series) -> str:
    if np.isnan(r.rho):
        return f"n = {int(r.n)}: too few jobs or no spread"
    return f"Spearman ρ = {r.rho:+.2f}, p = {r.p:.2g}, n = {int(r.n)}"


def _panel(ax, rows: pd.DataFrame, column: str, target: pd.Series, kind: pd.Series, title: str) -> None:
    values = _numeric(rows[column])
    for name, marker, legend in KINDS:
        pick = (kind == name) & values.notna() & target.notna()
        if pick.any():
            ax.scatter(values[pick], target[pick], marker=marker, s=28, alpha=0.8, edgecolors="black",
                       linewidths=0.4, label=legend, c=[row_colour(r, g) for r, g in zip(rows.row[pick],
                                                                                         rows.regime[pick])])
    ax.set_title(title, fontsize=7)
    ax.set_xlabel(STATISTICS[column], fontsize=8)
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=7)


def statistics_vs_few_shot(run: Run, per_row: int = 4):
    ok = run.main
    columns = [c for c in STATISTICS if c in ok and _numeric(ok[c]).notna().any()]
    if not columns:
        return Skip("No finished job of a regime's own recipe recorded the Fréchet distance, NC1 or CKA (they are "
                    "measured with the training-set evaluation, which --no-train-eval turns off).")
    datasets = sorted(set(ok.dataset))
    width, height = min(per_row, len(columns)), -(-len(columns) // per_row)  # panels per line, lines per data set
    fig, axes = plt.subplots(height * len(datasets), width, figsize=(3.0 * width, 2.9 * height * len(datasets)),
                             squeeze=False)
    undefined = []
    for number, dataset in enumerate(datasets):
        rows = ok[ok.dataset == dataset]
        target, base = few_shot_target(rows)
        table, kind = correlations(rows), _kind(rows)
        left_out = _numeric(rows.get("frechet_undefined")).max()
        if left_out > 0:
            undefined.append(f"{dataset}: {left_out:.0f}")
        panels = axes[number * height:(number + 1) * height].ravel()
        for ax, column in zip(panels, columns):
            _panel(ax, rows, column, target, kind, f"{dataset}: {_rho_text(table.loc[column])}")
            if column == "frechet" and left_out > 0:
                ax.text(0.02, 0.02, f"{left_out:.0f} class{'es' if left_out > 1 else ''} without one (fewer than "
                        f"2 images in a split)", transform=ax.transAxes, fontsize=6)
        for ax in panels[len(columns):]:
            ax.axis("off")
        for ax in panels[::width]:
            ax.set_ylabel(f"{target_words(base)}{' (%)' if base is None else ', points'}", fontsize=7)
        if panels[0].get_legend_handles_labels()[0]:
            legend = panels[0].legend(fontsize=6)
            for handle in legend.legend_handles:  # the markers' shapes name the kind; colours are the regimes'
                handle.set_facecolor("lightgrey")
    fig.tight_layout()
    missing = (f" Classes without a Fréchet distance (fewer than two images in a split), left out of its mean: "
               f"{'; '.join(undefined)}." if undefined else " Every class has a Fréchet distance.")
    return fig, ("Feature statistics against few-shot accuracy, one point per main job (seeds apart; colour = "
                 "regime, shape = light, heavy or backbone not tuned), Spearman's ρ over the data set's jobs in each "
                 "title (p uncorrected for the statistics shown). Fréchet: diagonal-Gaussian distance between a "
                 "class's train and test features; NC1: Tr(Σ_W Σ_B^†)/K; CKA: linear CKA against the pretrained "
                 "tower's features of the same images (1 for a frozen tower). The y axis is the change from the "
                 "zero-shot row's few-shot accuracy where a zero-shot job ran, else the few-shot accuracy." + missing)


STATISTICS_FIGURES = [statistics_vs_few_shot]
