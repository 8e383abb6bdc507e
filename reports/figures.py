"""The report's figures: each function takes the loaded run and returns (matplotlib figure, caption) or None.

Bars, points and lines are per row (one recipe of a regime, reports.load), never an average of two recipes."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.stats import ttest_rel  # noqa: E402

from bench.data.groups import FEW_MAX, GROUP_NAMES, GROUP_RULES, MANY_MIN  # noqa: E402
from bench.statistics import HIST_EDGES  # noqa: E402

from .load import Run  # noqa: E402
from .markdown import mean_sd  # noqa: E402

GROUPS = list(GROUP_NAMES)
SPREAD = "error bars: sd over seeds (ddof = 1; none for a row of one seed); n = seeds per row"


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
        return None
    fig, axes = _rows(len(_datasets(run)))
    for ax, dataset in zip(axes, _datasets(run)):
        rows = ok[ok.dataset == dataset]
        named = seeds_named(rows)
        order = [named[r] for r in rows.groupby("row").trainable_pct.mean().sort_values(kind="stable").index]
        long = rows.assign(row=rows.row.map(named)).melt(id_vars=["row", "seed"], value_vars=GROUPS,
                                                         var_name="group", value_name="accuracy").dropna()
        sns.barplot(long, x="row", y="accuracy", hue="group", order=order, errorbar="sd", ax=ax)
        means = long.groupby(["row", "group"]).accuracy.mean()
        ax.set_ylim(max(0.0, 5 * np.floor(means.min() / 5) - 5), min(100.0, means.max() + 5) if len(means) else 100)
        ax.set_title(f"{dataset} (regimes by trainable share of the backbone, lightest left)")
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlabel("")
        ax.legend(title="group", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig, ("Many / medium / few-shot accuracy per regime, ordered by trainable parameters (bars: mean over "
                 f"seeds; {SPREAD}; the y axis starts near the lowest bar).")


def per_class_vs_frequency(run: Run):
    ok = run.main
    fig, axes = _rows(len(_datasets(run)))
    for ax, dataset in zip(axes, _datasets(run)):
        for row, rows in ok[ok.dataset == dataset].groupby("row"):
            accs = class_accuracy(run, rows.job_id)
            counts = np.array(run.result(rows.job_id.iloc[0]).dataset["train_class_counts"])
            order = np.argsort(-counts, kind="stable")
            window = max(1, accs.shape[1] // 10)
            smooth = [pd.Series(v.to_numpy()[order]).rolling(window, min_periods=1, center=True).mean()
                      for v in (accs.mean(), accs.std(ddof=1))]
            line, = ax.plot(np.arange(accs.shape[1]), smooth[0], label=f"{row} (n={len(accs)})")
            if len(accs) > 1:
                ax.fill_between(np.arange(accs.shape[1]), smooth[0] - smooth[1], smooth[0] + smooth[1],
                                color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(f"{dataset}: per-class test accuracy, classes by training count (high → low), smoothed")
        ax.set_xlabel("class rank by training images")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    return fig, ("Per-class accuracy against class frequency (head classes left, tail classes right): mean over "
                 "seeds, band ± sd over seeds (smoothed like the line; none for one seed), n = seeds in the legend.")


def accuracy_vs_parameters(run: Run):
    ok = run.main
    fig, axes = _rows(len(_datasets(run)), width=8)
    for ax, dataset in zip(axes, _datasets(run)):
        rows = ok[ok.dataset == dataset]
        groups = rows.groupby("row")[["top1", "few", "trainable_params", "epochs"]]
        mean, sd = groups.mean(), groups.std(ddof=1)
        x = mean.trainable_params.clip(lower=1)
        for metric, marker, name in (("top1", "o", "overall"), ("few", "^", "few-shot")):
            ax.errorbar(x, mean[metric], yerr=sd[metric], fmt="none", ecolor="grey", elinewidth=0.8)
            ax.scatter(x, mean[metric], s=20 + 15 * mean.epochs, alpha=0.7, marker=marker, label=name)
        for row, label in seeds_named(rows).items():
            ax.annotate(label, (x[row], mean.top1[row]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log; zero-shot drawn at 1)")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, (f"Accuracy against trainable parameters, marker size = epochs (the papers' Figure 1); mean over "
                 f"seeds, {SPREAD}.")


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
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, column, title in zip(axes, ["epochs", "total_s", "train_images_per_s", "peak_memory_mb"],
                                 ["epochs", "wall time (s)", "training images/s", "peak memory (MB)"]):
        data = ok.dropna(subset=[column])
        if not data.empty:
            sns.barplot(data, x="row", y=column, hue="dataset", ax=ax, errorbar="sd")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig, ("Cost per regime: epochs, wall time, throughput and peak memory (GPU allocated, or CPU RSS); mean "
                 "over seeds, error bars: sd over seeds (ddof = 1; none for one seed).")


def stats_by_row(run: Run, dataset: str) -> dict[str, dict]:
    """Per row of `dataset`, the class statistics of its first job that has them."""
    ok = run.main
    out = {}
    for row, rows in ok[ok.dataset == dataset].groupby("row"):
        stats = next((s for s in map(run.stats, rows.job_id) if s is not None), None)
        if stats is not None:
            out[row] = stats
    return out


def feature_histograms(run: Run, dataset: str):
    stats = stats_by_row(run, dataset)
    if not stats:
        return None
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
            ax.set_title(f"{label}: {name} classes", fontsize=8)
            ax.tick_params(labelsize=7)
        if row[0].get_legend_handles_labels()[0]:
            row[0].legend(fontsize=7)
    fig.supxlabel("1 − cos(feature, class mean of its split)")
    fig.tight_layout()
    return fig, (f"{dataset}: distribution of 1 − cos to the class mean, train vs test, for head and tail classes. "
                 "Heavy fine-tuning pulls tail training features to their mean (blue left of orange).")


def feature_gap_vs_frequency(run: Run, dataset: str):
    stats = stats_by_row(run, dataset)
    if not stats:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for row, s in stats.items():
        ax.scatter(np.maximum(s["train_count"], 1), s["gap_pairwise"], s=8, alpha=0.6, label=row)
    ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("training images of the class (log)")
    ax.set_ylabel("pairwise spread: test − train")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title(dataset)
    fig.tight_layout()
    return fig, (f"{dataset}: per-class train/test feature gap (unbiased pairwise spread, test minus train) "
                 "against class frequency; 0 means train and test features are alike.")


def class_mean_similarity(run: Run, dataset: str, max_classes: int = 200):
    stats = stats_by_row(run, dataset)
    regime_of = dict(zip(run.main.row, run.main.regime))
    chosen = [row for regime in ("zero_shot", "linear_probe", "full", "lift_plus") for row in stats
              if regime_of[row] == regime] or list(stats)[:3]
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.8), squeeze=False)
    for ax, row in zip(axes[0], chosen):
        s = stats[row]
        order = np.argsort(-s["train_count"], kind="stable")
        order = order[np.linspace(0, len(order) - 1, min(max_classes, len(order))).astype(int)]
        means = s["test_means"][order].astype(np.float64)
        means = means / np.linalg.norm(means, axis=1, keepdims=True)
        sns.heatmap(means @ means.T, ax=ax, vmin=-1, vmax=1, cmap="vlag", xticklabels=False, yticklabels=False,
                    cbar=ax is axes[0][-1])
        ax.set_title(row, fontsize=9)
    fig.suptitle(f"{dataset}: cosine similarity of test class means, classes sorted by frequency")
    fig.tight_layout()
    return fig, f"{dataset}: similarity between test class means (head classes top-left)."


def grid_heatmap(run: Run, grid: dict):
    metric = grid["metric"]
    rows = []
    for member in grid["jobs"]:
        match = run.ok[run.ok.job_id == member["job_id"]]
        if not match.empty:
            rows.append({**member["point"], "dataset": member["dataset"], "seed": member["seed"],
                         metric: match[metric].iloc[0]})
    if not rows:
        return None
    data = pd.DataFrame(rows)
    data[metric] = pd.to_numeric(data[metric], errors="coerce")
    axes_names = [a for a in grid["axes"] if len(grid["axes"][a]) > 1] or list(grid["axes"])[:1]
    first, rest = axes_names[0], axes_names[1:]
    data["columns"] = data[rest].astype(str).agg(", ".join, axis=1) if rest else metric
    datasets = sorted(set(data.dataset))
    fig, axes = plt.subplots(len(datasets), 1, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    seeds = data.dropna(subset=[metric]).groupby(["dataset", first, "columns"]).seed.nunique()
    for ax, dataset in zip(axes[:, 0], datasets):
        cells = data[data.dataset == dataset]
        table = cells.pivot_table(index=first, columns="columns", values=metric, aggfunc="mean")
        if table.empty:  # e.g. few-shot accuracy on a data set without few-shot classes
            ax.text(0.5, 0.5, f"no {metric} values on {dataset}", ha="center", transform=ax.transAxes)
        else:
            text = cells.pivot_table(index=first, columns="columns", values=metric, aggfunc=mean_sd)
            sns.heatmap(table, annot=text.reindex_like(table).fillna("").to_numpy(), fmt="", cmap="viridis",
                        ax=ax, cbar_kws={"label": metric})
        ax.set_title(f"{grid['name']} on {dataset} ({metric}; columns: {', '.join(rest) or '-'})", fontsize=9)
    fig.tight_layout()
    n = "0" if seeds.empty else f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    return fig, (f"Ablation grid {grid['name']}: {metric} accuracy, mean ± sd over seeds (ddof = 1; the mean alone "
                 f"for one seed); n = {n} seeds per cell.")


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


RUN_FIGURES = [group_accuracy, per_class_vs_frequency, accuracy_vs_parameters, change_vs_zero_shot, train_vs_test,
               cost]
DATASET_FIGURES = [feature_histograms, feature_gap_vs_frequency, class_mean_similarity]
