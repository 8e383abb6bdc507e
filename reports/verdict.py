"""Plain-language findings per data set, computed from the numbers (never written by hand).

Everything is per row (one recipe of a regime, reports.load): two recipes of one regime are never averaged.
"""
from __future__ import annotations

import pandas as pd

from typing import Callable

from bench.data.groups import GROUP_NAMES, GROUP_RULES

Interval = Callable[[str, str], "list[float] | None"]  # (row a, row b) -> interval of few(a) - few(b), or None


def light_rows(rows: pd.DataFrame) -> list[str]:
    """The rows of parameter-efficient regimes: as the manifest recorded them when planned (for older folders,
    the registry's flag, or under 1% of the backbone for an unknown name; reports.load)."""
    flags = rows.groupby("row").lightweight.all()
    return sorted(row for row, light in flags.items() if light)


def _rows_of(rows: pd.DataFrame, regime: str) -> list[str]:
    return sorted(set(rows[rows.regime == regime].row))


def _named(row: str, regime: str, words: str) -> str:
    """`words` for one of the regime's rows, with the row's recipe brackets when the regime has several rows:
    `full fine-tuning [epochs=1]`."""
    return words + row[len(regime):]


def _span(low: float, high: float, spec: str) -> str:
    return f"{low:{spec}}" if f"{low:{spec}}" == f"{high:{spec}}" else f"{low:{spec}}–{high:{spec}}"


def light_share(light: pd.DataFrame) -> str:
    """How much of the backbone the light rows tune, the classifier counted apart: `backbone_trainable_pct`
    and `classifier_params` (results written before that split only have `trainable_pct`, the classifier
    included, and say so)."""
    from .figures import backbone_share  # figures imports pyplot; the verdict alone need not

    own = light.get("backbone_trainable_pct")
    split = own is not None and pd.to_numeric(own, errors="coerce").notna().all()
    pct = backbone_share(light).groupby(light.row).mean().dropna()
    if pct.empty:
        return "their trainable share is not recorded"
    text = f"they tune {_span(pct.min(), pct.max(), '.2g')}% of the backbone (papers: under 1%)"
    if not split:
        return text.replace("tune", "train") + ", the classifier counted in (results written before the " \
            "backbone and the classifier were counted apart)"
    if "classifier_params" not in light:
        return text
    classifier = pd.to_numeric(light["classifier_params"], errors="coerce").groupby(light.row).mean().dropna()
    if classifier.empty:
        return text
    return text + f", plus the classifier's {_span(classifier.min(), classifier.max(), ',.0f')} parameters"


def _seeds(rows: pd.DataFrame, row: str) -> str:
    n = rows[rows.row == row].seed.nunique()
    return f"{n} seed{'s' if n != 1 else ''}"


def _interval_words(interval: list[float] | None) -> str:
    """How sure the few-shot difference is: its class-bootstrap interval, and whether it excludes 0."""
    if interval is None:
        return "no interval (the rows' per-class results cannot be paired)"
    low, high = interval
    side = "excludes 0" if low > 0 or high < 0 else "includes 0: not distinguishable on these classes"
    return f"95% class-bootstrap interval of the difference [{low:+.1f}, {high:+.1f}], which {side}"


def _light_vs_full(rows: pd.DataFrame, mean: pd.DataFrame, light: list[str], full: str, name: str,
                   gaps: dict[str, float], few_interval: Interval | None) -> list[str]:
    """The light rows against one full fine-tuning row, called `name` in the text."""
    best = mean.loc[light].few.fillna(-1).idxmax()
    diff = mean.loc[best].few - mean.loc[full].few
    word = "beats" if diff > 0 else "trails"
    interval = few_interval(best, full) if few_interval else None
    lines = [f"On few-shot classes the best light regime ({best}, {mean.loc[best].few:.1f}, {_seeds(rows, best)}) "
             f"{word} {name} ({mean.loc[full].few:.1f}, {_seeds(rows, full)}) by {abs(diff):.1f} points "
             f"({_interval_words(interval)}); overall {mean.loc[best].top1:.1f} vs {mean.loc[full].top1:.1f}."]
    beaten = int((mean.loc[light].few > mean.loc[full].few).sum())
    lines.append(f"{beaten} of {len(light)} light regimes beat {name} on few-shot classes; "
                 + light_share(rows[rows.row.isin(light)]) + ".")
    if diff <= 0:
        lines.append(f"So against {name} this run does not reproduce the papers' finding that heavy fine-tuning "
                     "hurts the tail.")
    elif interval is not None and interval[0] <= 0:
        lines.append(f"So against {name} this run cannot tell whether heavy fine-tuning hurts the tail: the "
                     "difference is within what the choice of few-shot classes gives.")
    light_gaps = [gaps[r] for r in light if r in gaps]
    if full in gaps and light_gaps:
        more = gaps[full] > max(light_gaps)
        lines.append(f"The few-shot feature gap of {name} ({gaps[full]:+.3f}, {_seeds(rows, full)}) is "
                     f"{'larger than every' if more else 'not larger than every'} light regime's "
                     f"({min(light_gaps):+.3f} to {max(light_gaps):+.3f}): the papers' feature-inconsistency "
                     f"signature {'appears' if more else 'does not appear'} here.")
    return lines


def verdict(main: pd.DataFrame, dataset: str, stats_gap: dict[str, float | None] | None = None,
            few_interval: Interval | None = None) -> list[str]:
    """Findings for `dataset` from the finished main jobs (`main`, with reports.load's `row` and `lightweight`);
    `stats_gap` maps a row to its few-shot feature gap (mean over its seeds), `few_interval(a, b)` gives the
    interval of few(a) − few(b). With several full fine-tuning rows, the light rows are compared with each, by
    name."""
    rows = main[main.dataset == dataset]
    if rows.empty:
        return [f"{dataset}: no finished job."]
    mean = rows.groupby("row")[["top1", *GROUP_NAMES]].apply(
        lambda g: g.apply(pd.to_numeric, errors="coerce").mean())
    lines = []
    if mean.few.isna().all():
        best = f"{mean.top1.idxmax()} ({mean.top1.max():.1f})" if mean.top1.notna().any() else "none measured"
        return [f"{dataset} has no few-shot classes ({GROUP_RULES['few']} training images), so the tail comparison "
                f"does not apply; best overall: {best}."]
    light = [r for r in light_rows(rows) if r in mean.index]
    full = _rows_of(rows, "full")
    if not full or not light:
        missing = "full fine-tuning" if not full else "a lightweight regime"
        lines.append(f"The heavy-vs-light comparison needs {missing}, which this run lacks.")
    gaps = {r: g for r, g in (stats_gap or {}).items() if g is not None}
    for row in full if light else []:
        lines += _light_vs_full(rows, mean, light, row, _named(row, "full", "full fine-tuning"), gaps, few_interval)
    zero_shot = _rows_of(rows, "zero_shot")
    trained = mean.drop(index=zero_shot)
    for row in zero_shot if not trained.empty else []:
        name = _named(row, "zero_shot", "zero-shot")
        lines.append(f"Against {name} ({mean.loc[row].few:.1f} on few-shot classes), "
                     f"{(trained.few > mean.loc[row].few).sum()} of {len(trained)} trained regimes gain.")
    ranked = sorted((g, r) for r, g in gaps.items())
    if ranked:
        lines.append("Train/test feature gap on few-shot classes (pairwise spread, test − train; larger = tail "
                     "training features collapsed more): " + ", ".join(f"{r} {g:+.3f}" for g, r in ranked) + ".")
    return lines + statistic_findings(rows)


def statistic_findings(rows: pd.DataFrame) -> list[str]:
    """One sentence per feature statistic (Fréchet, NC1, CKA) whose Spearman ρ with few-shot accuracy over the
    data set's jobs has p < 0.05 with at least 5 jobs (reports.statistics_figures); nothing otherwise."""
    from .statistics_figures import LEVEL, MIN_JOBS, STATISTICS, correlations, few_shot_target, target_words

    table = correlations(rows)
    carried = table[(table.n >= MIN_JOBS) & (table.p < LEVEL)]
    target = target_words(few_shot_target(rows)[1])
    return [f"Across {int(r.n)} jobs, {STATISTICS[name]} {'rises' if r.rho > 0 else 'falls'} as the {target} rises: "
            f"Spearman ρ = {r.rho:+.2f}, p = {r.p:.2g} (not corrected for the {len(table)} statistics tested)."
            for name, r in carried.iterrows()]
