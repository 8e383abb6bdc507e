"""Plain-language findings per data set, computed from the numbers (never written by hand)."""
from __future__ import annotations

import pandas as pd

from regimes import REGIMES


def light_regimes(ok: pd.DataFrame) -> list[str]:
    """The parameter-efficient regimes of the run (registered as lightweight; an unknown name counts as light
    when it trains under 1% of the backbone)."""
    def light(regime: str, pct: float) -> bool:
        return REGIMES.get(regime).lightweight if regime in REGIMES else 0 < pct < 1.0

    pct = ok.groupby("regime").trainable_pct.mean()
    return sorted(r for r, p in pct.items() if light(r, p))


def verdict(ok: pd.DataFrame, dataset: str, stats_gap: dict[str, float] | None = None) -> list[str]:
    rows = ok[ok.dataset == dataset]
    if rows.empty:
        return [f"{dataset}: no finished job."]
    mean = rows.groupby("regime")[["top1", "many", "medium", "few"]].apply(
        lambda g: g.apply(pd.to_numeric, errors="coerce").mean())
    lines = []
    if mean.few.isna().all():
        return [f"{dataset} has no few-shot classes (< 20 training images), so the tail comparison does not apply; "
                f"best overall: {mean.top1.idxmax()} ({mean.top1.max():.1f})."]
    light = [r for r in light_regimes(rows) if r in mean.index]
    if "full" not in mean.index or not light:
        missing = "full fine-tuning" if "full" not in mean.index else "a lightweight regime"
        lines.append(f"The heavy-vs-light comparison needs {missing}, which this run lacks.")
    else:
        best = mean.loc[light].few.fillna(-1).idxmax()
        diff = mean.loc[best].few - mean.loc["full"].few
        word = "beats" if diff > 0 else "trails"
        lines.append(f"On few-shot classes the best light regime ({best}, {mean.loc[best].few:.1f}) {word} full "
                     f"fine-tuning ({mean.loc['full'].few:.1f}) by {abs(diff):.1f} points; overall "
                     f"{mean.loc[best].top1:.1f} vs {mean.loc['full'].top1:.1f}.")
        beaten = int((mean.loc[light].few > mean.loc["full"].few).sum())
        pct = rows[rows.regime.isin(light)].groupby("regime").trainable_pct.mean()
        lines.append(f"{beaten} of {len(light)} light regimes beat full fine-tuning on few-shot classes; they train "
                     f"{pct.min():.2g}–{pct.max():.2g}% of the backbone (the papers' light regimes: under 1%).")
        if diff <= 0:
            lines.append("So this run does not reproduce the papers' finding that heavy fine-tuning hurts the tail.")
        gaps = {r: g for r, g in (stats_gap or {}).items() if g is not None}
        light_gaps = [gaps[r] for r in light if r in gaps]
        if "full" in gaps and light_gaps:
            more = gaps["full"] > max(light_gaps)
            lines.append(f"Full fine-tuning's few-shot feature gap ({gaps['full']:+.3f}) is "
                         f"{'larger than every' if more else 'not larger than every'} light regime's "
                         f"({min(light_gaps):+.3f} to {max(light_gaps):+.3f}): the papers' feature-inconsistency "
                         f"signature {'appears' if more else 'does not appear'} here.")
    if "zero_shot" in mean.index:
        trained = mean.drop(index="zero_shot")
        if not trained.empty:
            lines.append(f"Against zero-shot ({mean.loc['zero_shot'].few:.1f} on few-shot classes), "
                         f"{(trained.few > mean.loc['zero_shot'].few).sum()} of {len(trained)} trained regimes gain.")
    if stats_gap:
        ranked = sorted((g, r) for r, g in stats_gap.items() if g is not None)
        if ranked:
            lines.append("Train/test feature gap on few-shot classes (pairwise spread, test − train; larger = tail "
                         "training features collapsed more): " + ", ".join(f"{r} {g:+.3f}" for g, r in ranked) + ".")
    return lines
