"""The report's figures: each function takes the loaded run and returns (matplotlib figure, caption) or None.

Bars, points and lines are per row (one recipe of a regime, reports.load), never an average of two recipes."""
from __future__ import annotations

import hashlib
import itertools
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.stats import ttest_rel  # noqa: E402

from bench.data.groups import FEW_MAX, GROUP_NAMES, GROUP_RULES, MANY_MIN  # noqa: E402
from bench.registry import REGIMES  # noqa: E402
from bench.statistics import HIST_EDGES  # noqa: E402

from .load import Run  # noqa: E402
from .markdown import mean_sd  # noqa: E402

GROUPS = list(GROUP_NAMES)
SPREAD = "error bars: sd over seeds (ddof = 1; none for a row of one seed); n = seeds per row"
BINNED_ABOVE = 300  # per-class scatters become per-frequency-bin medians and quartile bands above this many classes
BANDS_UP_TO = 4  # rows whose quartile band is drawn in a binned plot; more would cover each other
# 24 well-separated colours (Kelly's and glasbey-like): the registry's regimes take the first ones in name order,
# so a regime has the same colour in every figure and every run; other names are placed by a hash of the name.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000080", "#f0a30a", "#00a86b", "#ff1493", "#6b8e23", "#4b0082", "#a0522d", "#00ced1",
           "#b22222", "#9acd32", "#ff69b4", "#2f4f4f", "#daa520", "#7b68ee"]
_KNOWN = sorted(REGIMES.names())


class Skip(str):
    """What a figure function returns when it has nothing to show: the reason, written in the figure's place."""


def regime_colour(regime: str) -> str:
    """The regime's colour, the same in every figure: registered regimes get distinct ones (up to 24)."""
    regime = str(regime)
    if regime in _KNOWN and _KNOWN.index(regime) < len(PALETTE):
        return PALETTE[_KNOWN.index(regime)]
    spare = PALETTE[len(_KNOWN):] or PALETTE
    return spare[int(hashlib.sha256(regime.encode()).hexdigest(), 16) % len(spare)]


def row_colour(row: str, regime: str | None = None) -> str:
    """A row's colour: its regime's (the row label's first word when no regime is given)."""
    return regime_colour(regime if regime is not None else str(row).split(" ", 1)[0])


def _regime_of(run: Run) -> dict[str, str]:
    return dict(zip(run.table.row, run.table.regime))


def numeric_key(value):
    """Sort key that puts numbers (also numbers written as text, as grid points are) in numeric order: 1, 4, 16,
    64; text after them, alphabetically."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def backbone_share(rows: pd.DataFrame) -> pd.Series:
    """Per job the % of the backbone its regime tunes, the classifier not counted (`backbone_trainable_pct`),
    falling back to `trainable_pct` (classifier included) for results written before the column existed."""
    fallback = pd.to_numeric(rows["trainable_pct"], errors="coerce") if "trainable_pct" in rows else \
        pd.Series(np.nan, index=rows.index)
    own = rows.get("backbone_trainable_pct")
    if own is None:
        return fallback
    return pd.to_numeric(own, errors="coerce").combine_first(fallback)


def _finite(values) -> np.ndarray:
    values = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    return values[np.isfinite(values)]


def data_wait_share(run: Run, job_ids) -> pd.Series:
    """Per job the mean over its epochs of `data_wait_share` (share of step time spent waiting for data), in %;
    NaN where its history does not record it."""
    out = {}
    for job_id in job_ids:
        history = getattr(run.results[job_id], "history", None) or []  # in the result's JSON
        values = _finite([h.get("data_wait_share") for h in history if isinstance(h, dict)])
        out[job_id] = 100.0 * float(values.mean()) if len(values) else np.nan
    return pd.Series(out, dtype=float)


def _datasets(run: Run) -> list[str]:
    return sorted(set(run.main.dataset))


def seeds_named(rows: pd.DataFrame) -> dict[str, str]:
    """Per row, its label with the number of seeds its values average: `lora (n=3)`."""
    return {row: f"{row} (n={n})" for row, n in rows.groupby("row").seed.nunique().items()}


def class_accuracy(run: Run, job_ids) -> pd.DataFrame:
    """Per-class test accuracy, one line per job (seed), NaN for a class absent from the test split."""
    return pd.DataFrame([run.result(j).metrics["test"]["per_class_acc"] for j in job_ids], dtype=float)


def paired_t_pvalue(a, b) -> float | None:
    """Two-sided p of scipy's paired t-test (ttest_rel) of a against b, paired by position (seed); None where it
    is undefined (no spread in the differences)."""
    p = ttest_rel(a, b).pvalue
    return float(p) if np.isfinite(p) else None


def _rows(n: int, height: float = 3.2, width: float = 11.0):
    fig, axes = plt.subplots(n, 1, figsize=(width, height * n), squeeze=False)
    return fig, axes[:, 0]


def group_accuracy(run: Run):
    ok = run.main
    if ok.empty:
        return Skip("No finished job of a regime's own recipe.")
    fig, axes = _rows(len(_datasets(run)))
    for ax, dataset in zip(axes, _datasets(run)):
        rows = ok[ok.dataset == dataset]
        named = seeds_named(rows)
        share = backbone_share(rows).groupby(rows.row).mean()
        order = [named[r] for r in share.sort_values(kind="stable").index]
        long = rows.assign(row=rows.row.map(named)).melt(id_vars=["row", "seed"], value_vars=GROUPS,
                                                         var_name="group", value_name="accuracy").dropna()
        ax.set_title(f"{dataset} (regimes by trainable share of the backbone, lightest left)")
        if long.empty:
            _say(ax, f"no group accuracy measured on {dataset}")
            continue
        sns.barplot(long, x="row", y="accuracy", hue="group", order=[o for o in order if o in set(long.row)],
                    errorbar="sd", ax=ax)
        means = long.groupby(["row", "group"]).accuracy.mean()
        ax.set_ylim(max(0.0, 5 * np.floor(means.min() / 5) - 5), min(100.0, means.max() + 5))
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlabel("")
        ax.legend(title="group", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig, ("Many / medium / few-shot accuracy per regime, ordered by trainable parameters (bars: mean over "
                 f"seeds; {SPREAD}; the y axis starts near the lowest bar).")


def per_class_vs_frequency(run: Run):
    ok = run.main
    if ok.empty:
        return Skip("No finished job of a regime's own recipe.")
    regime_of = _regime_of(run)
    fig, axes = _rows(len(_datasets(run)))
    drawn = False
    for ax, dataset in zip(axes, _datasets(run)):
        for row, rows in ok[ok.dataset == dataset].groupby("row"):
            try:
                accs = class_accuracy(run, rows.job_id)
            except (KeyError, TypeError):  # a result without per-class accuracies
                continue
            counts = np.array(run.result(rows.job_id.iloc[0]).dataset.get("train_class_counts") or [])
            if accs.empty or len(counts) != accs.shape[1]:
                continue
            order = np.argsort(-counts, kind="stable")
            window = max(1, accs.shape[1] // 10)
            smooth = [pd.Series(v.to_numpy()[order]).rolling(window, min_periods=1, center=True).mean()
                      for v in (accs.mean(), accs.std(ddof=1))]
            colour = row_colour(row, regime_of.get(row))
            # the smoothed curve at most ~1,000 points along the ranking (8,142 classes: every 9th)
            at = np.unique(np.linspace(0, accs.shape[1] - 1, min(accs.shape[1], 1000)).astype(int))
            ax.plot(at, smooth[0].to_numpy()[at], label=f"{row} (n={len(accs)})", color=colour)
            drawn = True
            if len(accs) > 1:
                ax.fill_between(at, (smooth[0] - smooth[1]).to_numpy()[at], (smooth[0] + smooth[1]).to_numpy()[at],
                                color=colour, alpha=0.15, linewidth=0)
        ax.set_title(f"{dataset}: per-class test accuracy, classes by training count (high → low), smoothed")
        ax.set_xlabel("class rank by training images")
        ax.set_ylabel("accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=4)
    if not drawn:
        plt.close(fig)
        return Skip("No job recorded per-class test accuracies with its class counts.")
    fig.tight_layout()
    return fig, ("Per-class accuracy against class frequency (head classes left, tail classes right): mean over "
                 "seeds, band ± sd over seeds (smoothed like the line; none for one seed), n = seeds in the legend.")


def accuracy_vs_parameters(run: Run):
    ok = run.main
    if ok.empty:
        return Skip("No finished job of a regime's own recipe.")
    ok = ok.assign(backbone_share=backbone_share(ok))
    regime_of = _regime_of(run)
    fig, axes = _rows(len(_datasets(run)), width=8)
    floors = []
    for ax, dataset in zip(axes, _datasets(run)):
        rows = ok[ok.dataset == dataset]
        groups = rows.groupby("row")[["top1", "few", "backbone_share", "epochs"]]
        mean, sd = groups.mean(), groups.std(ddof=1)
        share = mean.backbone_share
        positive = share[share > 0]
        floor = 10 ** np.floor(np.log10(positive.min())) / 10 if len(positive) else 1e-4
        x = share.where(share > 0, floor)  # no tuned backbone (zero-shot, linear probe) drawn at the floor
        if share.isna().all() or mean[["top1", "few"]].isna().all().all():
            _say(ax, f"{dataset}: no backbone share or accuracy recorded")
            ax.set_title(dataset)
            continue
        floors.append(floor)
        size = 20 + 15 * mean.epochs.fillna(0)
        for metric, marker, name in (("top1", "o", "overall"), ("few", "^", "few-shot")):
            have = x.notna() & mean[metric].notna()
            if not have.any():
                continue
            ax.errorbar(x[have], mean[metric][have], yerr=sd[metric][have], fmt="none", ecolor="grey",
                        elinewidth=0.8)
            ax.scatter(x[have], mean[metric][have], s=size[have], alpha=0.7, marker=marker, label=name,
                       c=[row_colour(r, regime_of.get(r)) for r in x[have].index], edgecolors="black",
                       linewidths=0.4)
        for row, label in seeds_named(rows).items():
            if pd.notna(x[row]) and pd.notna(mean.top1[row]):
                ax.annotate(label, (x[row], mean.top1[row]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(f"% of the backbone tuned (log; classifier not counted; none tuned drawn at {floor:g}%)")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
        legend = ax.legend(fontsize=7)
        for handle in legend.legend_handles:  # the markers' shapes name the metric; colours are the regimes'
            handle.set_facecolor("lightgrey")
    if not floors:
        plt.close(fig)
        return Skip("No finished job recorded both its trainable share and its accuracy.")
    fig.tight_layout()
    return fig, ("Accuracy against the share of the backbone a regime tunes (the classifier's parameters not "
                 "counted; results older than that split count them), marker size = epochs, colour = regime (the "
                 f"papers' Figure 1; circles overall, triangles few-shot); mean over seeds, {SPREAD}.")


def change_vs_zero_shot(run: Run):
    """Against the data set's zero-shot row (the first by name, named in the title, when there are several)."""
    ok = run.main
    sets = [d for d in _datasets(run) if "zero_shot" in set(ok[ok.dataset == d].regime)]
    if not sets:
        return None
    fig, axes = _rows(len(sets))
    for ax, dataset in zip(axes, sets):
        rows = ok[ok.dataset == dataset]
        zero_shot = sorted(set(rows[rows.regime == "zero_shot"].row))
        mean, sd = rows.groupby("row")[GROUPS].mean(), rows.groupby("row")[GROUPS].std(ddof=1)
        delta = (mean - mean.loc[zero_shot[0]]).drop(index=zero_shot)
        if not delta.empty:
            named = seeds_named(rows)
            delta.rename(index=named).plot.bar(ax=ax, rot=30, yerr=sd.drop(index=zero_shot).rename(index=named))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("points vs zero-shot")
        ax.set_title(dataset if len(zero_shot) == 1 else f"{dataset}: against {zero_shot[0]}")
    fig.tight_layout()
    return fig, ("Change in accuracy against zero-shot CLIP per group: how much each regime gains or loses "
                 f"(difference of the means over seeds; {SPREAD}, the regime's own).")


def train_vs_test(run: Run):
    ok = run.main
    fig, axes = _rows(len(_datasets(run)))
    for ax, dataset in zip(axes, _datasets(run)):
        rows = ok[ok.dataset == dataset]
        gap = pd.DataFrame({g: rows[f"train_{g}"] - rows[g] for g in GROUPS}).groupby(rows.row.map(seeds_named(rows)))
        gap.mean().plot.bar(ax=ax, rot=30, yerr=gap.std(ddof=1))
        ax.set_ylabel("train − test accuracy")
        ax.set_title(f"{dataset}: over-fitting per group")
    fig.tight_layout()
    return fig, ("Training-set minus test accuracy per group: the larger, the more a regime memorised its training "
                 f"images (mean over seeds of each job's gap; {SPREAD}).")


def cost(run: Run):
    ok = run.main
    if ok.empty:
        return Skip("No finished job of a regime's own recipe.")
    wait = data_wait_share(run, ok.job_id)
    ok = ok.assign(data_wait_pct=ok.job_id.map(wait))
    panels = [("epochs", "epochs"), ("total_s", "wall time (s)"), ("train_images_per_s", "training images/s"),
              ("peak_memory_mb", "peak memory (MB)")]
    if ok.data_wait_pct.notna().any():
        panels.append(("data_wait_pct", "waiting for data (% of step time)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels), 3.4))
    for ax, (column, title) in zip(axes, panels):
        data = ok.dropna(subset=[column])
        if not data.empty:
            sns.barplot(data, x="row", y=column, hue="dataset", ax=ax, errorbar="sd")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.set_xlabel("")
    fig.tight_layout()
    wait_text = (" Waiting for data: mean over epochs of the share of step time spent waiting for the next batch "
                 "(high = the loader starves the device)." if len(panels) == 5 else "")
    return fig, ("Cost per regime: epochs, wall time, throughput and peak memory (GPU allocated, or CPU RSS); mean "
                 "over seeds, error bars: sd over seeds (ddof = 1; none for one seed)." + wait_text)


def stats_by_row(run: Run, dataset: str) -> dict[str, dict]:
    """Per row of `dataset`, the class statistics of all its seeds that have them, pooled (`_pool`; `n_seeds`
    says how many). The class means are left out (see `_job_stats`); computed once per run and data set."""
    cache = run.__dict__.setdefault("_pooled_stats", {})
    if dataset in cache:
        return cache[dataset]
    ok = run.main
    out = {}
    for row, rows in ok[ok.dataset == dataset].groupby("row"):
        seeds = [s for s in (_job_stats(run, j) for j in rows.job_id) if s is not None]
        if seeds:
            out[row] = _pool(seeds)
    cache[dataset] = out
    return out


def feature_histograms(run: Run, dataset: str):
    stats = stats_by_row(run, dataset)
    if not stats:
        return Skip(f"{dataset}: no job saved per-class feature statistics.")
    fig, axes = plt.subplots(len(stats), 2, figsize=(10, 2.2 * len(stats)), squeeze=False)
    centres = (HIST_EDGES[:-1] + HIST_EDGES[1:]) / 2
    for row, (label, s) in zip(axes, stats.items()):
        counts = s["train_count"]
        for ax, (name, classes) in zip(row, [(f"head ({GROUP_RULES['many']})", counts > MANY_MIN),
                                             (f"tail ({GROUP_RULES['few']})", counts < FEW_MAX)]):
            for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
                hist = s[f"{split}_hist"][classes].sum(axis=0)
                if hist.sum():
                    ax.plot(centres, hist / hist.sum(), color=colour, label=split)
            ax.set_title(f"{label} ({_seeds(s)}): {name} classes", fontsize=8)
            ax.tick_params(labelsize=7)
        if row[0].get_legend_handles_labels()[0]:
            row[0].legend(fontsize=7)
    fig.supxlabel("1 − cos(feature, class mean of its split)")
    fig.tight_layout()
    return fig, (f"{dataset}: distribution of 1 − cos to the class mean, train vs test, for head and tail classes, "
                 "pooled over each row's seeds (n in the titles). Heavy fine-tuning pulls tail training features "
                 "to their mean (blue left of orange).")


def feature_gap_vs_frequency(run: Run, dataset: str):
    stats = stats_by_row(run, dataset)
    if not stats:
        return Skip(f"{dataset}: no job saved per-class feature statistics.")
    regime_of = _regime_of(run)
    classes = max(len(s["train_count"]) for s in stats.values())
    binned = classes > BINNED_ABOVE
    fig, ax = plt.subplots(figsize=(9, 3.6))
    drawn = False
    for row, s in stats.items():
        colour = row_colour(row, regime_of.get(row))
        label = f"{row} ({_seeds(s)})"
        if binned:
            table = frequency_bins(s["train_count"], s["gap_pairwise"])
            if table.empty:
                continue
            ax.plot(table.centre, table["median"], color=colour, marker="o", markersize=3, label=label)
            if len(stats) <= BANDS_UP_TO:
                ax.fill_between(table.centre, table.q25, table.q75, color=colour, alpha=0.12, linewidth=0)
        else:
            ax.scatter(np.maximum(s["train_count"], 1), s["gap_pairwise"], s=8, alpha=0.6, label=label,
                       color=colour)
        drawn = drawn or bool(np.isfinite(s["gap_pairwise"]).any())
    if not drawn:
        plt.close(fig)
        return Skip(f"{dataset}: no class has a train/test feature gap (every class needs 2 images per split).")
    ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training images of the class (log)")
    ax.set_ylabel("pairwise spread: test − train")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title(dataset)
    fig.tight_layout()
    band = ("their interquartile range (band)" if len(stats) <= BANDS_UP_TO else
            f"no interquartile bands with more than {BANDS_UP_TO} rows, they would cover each other")
    how = (f"{classes:,} classes, so per log-spaced frequency bin the median over the bin's classes (line), "
           f"{band}" if binned else "one point per class")
    return fig, (f"{dataset}: per-class train/test feature gap (unbiased pairwise spread, test minus train) "
                 f"against class frequency, each row's per-class values averaged over its seeds (n in the legend); "
                 f"{how}; 0 means train and test features are alike.")


def class_mean_similarity(run: Run, dataset: str, max_classes: int = 200):
    stats = stats_by_row(run, dataset)
    regime_of = dict(zip(run.main.row, run.main.regime))
    chosen = [row for regime in ("zero_shot", "linear_probe", "full", "lift_plus") for row in stats
              if regime_of[row] == regime] or list(stats)[:3]
    if not chosen:
        return Skip(f"{dataset}: no job saved per-class feature statistics.")
    jobs = run.main[run.main.dataset == dataset]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.8), squeeze=False)
    total = shown = 0
    image = None
    for ax, row in zip(axes[0], chosen):
        s = stats[row]
        order = np.argsort(-s["train_count"], kind="stable")
        total = len(order)
        order = order[np.unique(np.linspace(0, len(order) - 1, min(max_classes, len(order))).astype(int))]
        shown = len(order)
        sim = _similarity(run, jobs[jobs.row == row].job_id, order)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{row} ({_seeds(s)})", fontsize=9)
        if sim is None:
            _say(ax, "no class means saved")
            continue
        image = ax.imshow(sim, vmin=-1, vmax=1, cmap="vlag", interpolation="nearest", aspect="auto")
    if image is None:
        plt.close(fig)
        return Skip(f"{dataset}: no job saved its test class means.")
    colorbar = fig.colorbar(image, ax=list(axes[0]), fraction=0.02)
    if colorbar.solids is not None:
        colorbar.solids.set_rasterized(True)
    sampled = (f"{shown:,} of {total:,} classes, sampled evenly along the training-frequency ranking (about one "
               f"in {total / shown:.0f})" if shown < total else f"all {total:,} classes")
    fig.suptitle(f"{dataset}: cosine similarity of test class means, classes sorted by frequency ({sampled})",
                 fontsize=9)
    return fig, (f"{dataset}: similarity between test class means (head classes top-left); {sampled}; each "
                 f"similarity averaged over the row's seeds (n in the titles).")


def grid_heatmap(run: Run, grid: dict):
    metric = grid["metric"]
    rows = []
    for member in grid["jobs"]:
        match = run.ok[run.ok.job_id == member["job_id"]]
        if not match.empty:
            rows.append({**member["point"], "dataset": member["dataset"], "seed": member["seed"],
                         metric: match[metric].iloc[0]})
    if not rows:
        return Skip(f"Ablation grid {grid['name']}: no finished job.")
    data = pd.DataFrame(rows)
    data[metric] = pd.to_numeric(data[metric], errors="coerce")
    datasets = sorted(set(data.dataset))
    fig, axes = plt.subplots(len(datasets), 1, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    seeds = []
    for ax, dataset in zip(axes[:, 0], datasets):
        cells = data[data.dataset == dataset].copy()
        own = [a for a in grid["axes"] if a in cells and cells[a].notna().all()]  # not another data set's axis
        axes_names = [a for a in own if len(grid["axes"][a]) > 1] or own[:1]
        first, rest = axes_names[0], axes_names[1:]
        cells["columns"] = cells[rest].astype(str).agg(", ".join, axis=1) if rest else metric
        column_order = sorted(set(cells["columns"]), key=lambda c: tuple(
            numeric_key(v) for v in (c.split(", ") if rest else [c])))
        seeds.append(cells.dropna(subset=[metric]).groupby([first, "columns"]).seed.nunique())
        table = cells.pivot_table(index=first, columns="columns", values=metric, aggfunc="mean")
        if table.empty:  # e.g. few-shot accuracy on a data set without few-shot classes
            ax.text(0.5, 0.5, f"no {metric} values on {dataset}", ha="center", transform=ax.transAxes)
        else:
            table = table.reindex(index=sorted(table.index, key=numeric_key),
                                  columns=[c for c in column_order if c in table.columns])
            text = cells.pivot_table(index=first, columns="columns", values=metric, aggfunc=mean_sd)
            sns.heatmap(table, annot=text.reindex_like(table).fillna("").to_numpy(), fmt="", cmap="viridis",
                        ax=ax, cbar_kws={"label": metric})
        ax.set_title(f"{grid['name']} on {dataset} ({metric}; columns: {', '.join(rest) or '-'})", fontsize=9)
    fig.tight_layout()
    seeds = pd.concat(seeds)
    n = "0" if seeds.empty else f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    return fig, (f"Ablation grid {grid['name']}: {metric} accuracy, mean ± sd over seeds (ddof = 1; the mean alone "
                 f"for one seed); n = {n} seeds per cell; numeric axes in numeric order.")


def grid_paired_tests(run: Run, grid: dict) -> pd.DataFrame | None:
    """Each grid point against the grid's first point, paired over seeds (t-test); None without ≥ 2 seeds."""
    metric = grid["metric"]
    values: dict[tuple, dict[int, float]] = {}
    for member in grid["jobs"]:
        match = run.ok[run.ok.job_id == member["job_id"]]
        if not match.empty:
            key = (member["dataset"], tuple(sorted(member["point"].items())))
            values.setdefault(key, {})[member["seed"]] = float(match[metric].iloc[0])
    rows = []
    for dataset, points in itertools.groupby(sorted(values), key=lambda k: k[0]):
        points = list(points)
        base = values[points[0]]
        for key in points[1:]:
            seeds = sorted(set(base) & set(values[key]))
            if len(seeds) < 2:
                continue
            a, b = [values[key][s] for s in seeds], [base[s] for s in seeds]
            rows.append({"dataset": dataset, "point": ", ".join(f"{k}={v}" for k, v in key[1]),
                         "baseline": ", ".join(f"{k}={v}" for k, v in points[0][1]), "seeds": len(seeds),
                         "difference": float(np.mean(a) - np.mean(b)),
                         "p_value": paired_t_pvalue(a, b)})
    return pd.DataFrame(rows) if rows else None


def _say(ax, text: str) -> None:
    """A panel with nothing to draw says why instead."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _job_stats(run: Run, job_id: str, keys=None) -> dict[str, np.ndarray] | None:
    """The job's per-class statistics less the class means (cheap: the K×D means are not decompressed, and a
    damaged class-means file costs only the figure that draws them), or, with `keys`, only those; None without
    a statistics file."""
    return run.stats(job_id, keys, class_means=keys is not None and "test_means" in keys)


def _pool(seeds: list[dict]) -> dict:
    """Per-class statistics of a row's seeds pooled: histograms summed, other per-class values averaged (NaN
    ignored), counts from the first seed (a row's seeds share the split)."""
    out = {}
    for key in seeds[0]:
        arrays = [s[key] for s in seeds if key in s and s[key].shape == seeds[0][key].shape]
        if key.endswith("count"):
            out[key] = arrays[0]
        elif key.endswith("hist"):
            out[key] = np.sum(arrays, axis=0)
        elif np.issubdtype(arrays[0].dtype, np.number):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN class
                out[key] = np.nanmean(np.stack(arrays).astype(np.float64), axis=0) if len(arrays) > 1 \
                    else arrays[0]
        else:
            out[key] = arrays[0]
    out["n_seeds"] = len(seeds)
    return out


def _seeds(s: dict) -> str:
    return f"n={s.get('n_seeds', 1)}"


def frequency_bins(counts: np.ndarray, values: np.ndarray, bins: int = 12) -> pd.DataFrame:
    """Median and quartiles of `values` per log-spaced bin of class frequency (bins with a value only)."""
    counts = np.maximum(np.asarray(counts, dtype=float), 1)
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values)
    if not keep.any():
        return pd.DataFrame(columns=["centre", "median", "q25", "q75", "classes"])
    edges = np.unique(np.geomspace(counts.min(), counts.max() * 1.0001, bins + 1))
    if len(edges) < 2:
        edges = np.array([counts.min(), counts.min() * 1.0001])
    which = np.clip(np.digitize(counts, edges) - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        v = values[keep & (which == b)]
        if len(v):
            rows.append({"centre": float(np.sqrt(edges[b] * edges[b + 1])), "median": float(np.median(v)),
                         "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75)),
                         "classes": len(v)})
    return pd.DataFrame(rows)


def _similarity(run: Run, job_ids, order: np.ndarray) -> np.ndarray | None:
    """Cosine similarity of the test class means at `order`, averaged over the jobs (seeds) that saved them."""
    mats = []
    for job_id in job_ids:
        s = _job_stats(run, job_id, keys=("test_means",))
        if s and "test_means" in s and len(s["test_means"]) > order.max():
            means = s["test_means"][order].astype(np.float64)
            means = means / np.linalg.norm(means, axis=1, keepdims=True)
            mats.append(means @ means.T)
    return np.nanmean(mats, axis=0) if mats else None


RUN_FIGURES = [group_accuracy, per_class_vs_frequency, accuracy_vs_parameters, change_vs_zero_shot, train_vs_test,
               cost]
DATASET_FIGURES = [feature_histograms, feature_gap_vs_frequency, class_mean_similarity]
