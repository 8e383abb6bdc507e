"""The report's remedies (bench.derived): WiSE-FT's accuracy against α, the soups against their ingredients, and the
post-hoc corrections against the job they correct, τ chosen on the validation split where there is one.

Every number is a derived job's own test result; its parents' rows are shown beside it for the comparison.
"""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import pandas as pd

from bench.job_result import GROUPS

METRICS = ("top1", *GROUPS)
TAU_FORMS = ("tau_norm", "logit_adjust")


def derived_rows(run) -> pd.DataFrame:
    """The finished derived jobs, each with `parent`: its (first) parent's row label, which tells the recipes of a
    regime apart and is shared by the seeds of one recipe."""
    ok = run.ok
    rows = ok[ok.remedy.notna()].copy() if "remedy" in ok else ok.iloc[0:0].copy()
    labels = dict(zip(ok.job_id, ok.row))
    rows["parent"] = [labels.get(ids.split()[0], ids.split()[0]) for ids in rows.get("parent_ids", [])]
    return rows


def _parent(run, ids: str) -> pd.Series | None:
    first = ids.split()[0]
    rows = run.ok[run.ok.job_id == first]
    return rows.iloc[0] if len(rows) else None


def wise_figure(run, dataset: str):
    """Many/medium/few-shot test accuracy against α, one line per parent recipe (mean over its seeds)."""
    rows = derived_rows(run)
    rows = rows[(rows.dataset == dataset) & (rows.remedy == "wise")]
    if rows.empty:
        return None
    fig, axes = plt.subplots(1, len(GROUPS), figsize=(4 * len(GROUPS), 3.4), sharey=True)
    for ax, group in zip(axes, GROUPS):
        for parent in sorted(set(rows.parent)):
            mean = rows[rows.parent == parent].groupby("remedy_value")[group].mean().sort_index()
            ax.plot(mean.index, mean.values, marker="o", label=parent)
        ax.set_title(f"{group}-shot")
        ax.set_xlabel("α (0: initial model, 1: fine-tuned)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig, (f"{dataset}: WiSE-FT (Wortsman et al., CVPR 2022), θ_α = (1 − α)·θ_0 + α·θ_1 on the backbone "
                 f"tensors that trained and the classifier (from its initialisation), an injected module's output "
                 f"mixed likewise; test accuracy per shot group against α, mean over seeds.")


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="–", border=0, escape=True)


def _accuracy(row) -> dict:
    return {m: row[m] for m in METRICS}


def wise_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per parent recipe and α, mean test accuracy over seeds (n of them)."""
    wise = rows[rows.remedy == "wise"]
    if wise.empty:
        return wise
    grouped = wise.groupby(["parent", "remedy_value"])
    table = grouped[list(METRICS)].mean().join(grouped.size().rename("n")).reset_index()
    return table.rename(columns={"parent": "job", "remedy_value": "α"})


def soup_table(run, rows: pd.DataFrame) -> pd.DataFrame:
    """Each soup beside its ingredients' mean and best (on test): what souping bought."""
    out = []
    for _, soup in rows[rows.remedy.isin(["uniform_soup", "greedy_soup"])].iterrows():
        parents = run.ok[run.ok.job_id.isin(soup.parent_ids.split())]
        result = run.results[soup.job_id]
        chosen = (result.derived or {}).get("ingredients")
        over = ((result.derived or {}).get("settings") or {}).get("over")
        job = soup.parent if over == "seeds" else f"{soup.regime} (its --select candidates)"
        out.append({"job": job, "seed": None if over == "seeds" else soup.seed, "soup": soup.remedy,
                    "ingredients": f"{len(chosen) if chosen else len(parents)} of {len(soup.parent_ids.split())}",
                    **_accuracy(soup), "ingredients' mean top1": parents.top1.mean(),
                    "best ingredient top1": parents.top1.max(), "best ingredient few": parents.few.max()})
    return pd.DataFrame(out)


def _val(run, job_id: str, metric: str):
    return (run.results[job_id].metrics.get("val") or {}).get(metric)


def posthoc_table(run, rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Per parent and correction: the τ chosen on the validation split (its mean class accuracy, as --select picks
    by default) and its test numbers, or, with
    no validation split, every τ; cRT and LWS once each; the parent's own numbers first. Second: whether τ was
    chosen on validation."""
    posthoc = rows[rows.remedy.isin([*TAU_FORMS, "crt", "lws"])]
    out, chose = [], False
    for parent_id, members in posthoc.groupby("parent_ids", sort=False):
        parent = _parent(run, parent_id)
        if parent is None:
            continue
        out.append({"job": parent.row, "seed": parent.seed, "correction": "none (the job)", "τ": None,
                    **_accuracy(parent)})
        for form, forms in members.groupby("remedy", sort=False):
            scored = [(v, -row.remedy_value, row.job_id) for row in forms.itertuples()
                      if (v := _val(run, row.job_id, "mean_class_acc")) is not None]
            if form in TAU_FORMS and scored and len(scored) == len(forms):
                chose = True
                best = forms[forms.job_id == max(scored)[2]].iloc[0]  # of equals, the smallest τ
                out.append({"job": parent.row, "seed": parent.seed, "correction": f"{form} (τ on val)",
                            "τ": best.remedy_value, **_accuracy(best)})
            else:
                out += [{"job": parent.row, "seed": parent.seed, "correction": form, "τ": row.remedy_value,
                         **_accuracy(row)}
                        for _, row in forms.sort_values("remedy_value").iterrows()]
    return pd.DataFrame(out), chose


def remedies_section(run) -> str:
    """The report's remedies section; empty when the run has no derived job."""
    rows = derived_rows(run)
    if rows.empty:
        return ""
    parts = ["<h2>Remedies</h2><p>Derived jobs (--remedies) on the main jobs: each row is its own job's test "
             "accuracy (%), from its parents' saved weights (wise, soup) or cached features (posthoc).</p>"]
    for dataset in sorted(set(rows.dataset)):
        mine = rows[rows.dataset == dataset]
        parts.append(f"<h3>{html.escape(dataset)}</h3>")
        wise = wise_table(mine)
        if not wise.empty:
            parts.append("<p>WiSE-FT: mean over seeds per α (figure below).</p>" + _table(wise))
        soups = soup_table(run, mine)
        if not soups.empty:
            parts.append("<p>Model soups (Wortsman et al., ICML 2022): the uniform soup averages every ingredient, "
                         "the greedy soup adds them in decreasing order of their validation score and keeps one "
                         "only if the soup's validation score does not drop.</p>" + _table(soups))
        posthoc, chose = posthoc_table(run, mine)
        if not posthoc.empty:
            how = ("τ chosen on the validation split's mean class accuracy (the test split played no part)" if chose else
                   "no validation split: every τ is shown, none chosen (choosing on test would flatter)")
            parts.append(f"<p>Post-hoc corrections: τ-normalisation, cRT and LWS (Kang et al., ICLR 2020), logit "
                         f"adjustment (Menon et al., ICLR 2021); {how}.</p>" + _table(posthoc))
    return "".join(parts)
