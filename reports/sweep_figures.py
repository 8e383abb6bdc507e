"""Where heavy fine-tuning starts to hurt: for a grid with a data-set axis (bench.grids, e.g.
`cifar100_lt.imbalance_ratio`), the few-shot test accuracy of each heavy regime minus each lightweight one against
the axis value, one line per pair, with its 95 % interval; and the same numbers as a table.

Heavy: a regime that is not lightweight (as the manifest recorded it) and tunes backbone tensors (full, partial);
light: a lightweight one (LoRA, AdaptFormer, LIFT+). Zero-shot and the linear probe tune no backbone tensor and
are neither. The interval pairs what both jobs share: with several seeds both ran, a percentile bootstrap over
those seeds of the per-seed differences; with one, a paired bootstrap over the test images (bench.bootstrap,
each class's images drawn again, the same ones for both jobs) from the jobs' saved predictions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from bench.bootstrap import paired_image_interval, seed_interval
from bench.data.groups import FEW_MAX, ClassGroups
from bench.grids import data_axis

from .figures import Skip, numeric_key, plt, regime_colour  # pyplot as .figures set it up (the Agg backend)
from .load import Run
from .markdown import interval_text

LINE_STYLES = ("-", "--", ":", "-.")  # one per heavy regime; the colour is the light regime's
NO_FEW = "no few-shot class"
COLUMNS = ["dataset", "axis", "value", "tail images", "heavy", "light", "seeds", "heavy few", "light few",
           "heavy − light", "95% CI", "interval over"]  # the table as shown; `interval` holds the bounds


def sweep_axes(grid: dict) -> list[str]:
    """The grid's data-set axes (`DATASET.FIELD`); none: the grid has no sweep figure."""
    return [axis for axis in grid.get("axes", {}) if data_axis(axis)]


def _members(run: Run, grid: dict) -> pd.DataFrame:
    """One line per finished job of the grid: its data set, data-set axis and value, regime, the rest of its
    point (`setting`), seed and few-shot accuracy, and whether its regime is heavy or light (or neither)."""
    ok = run.ok.set_index("job_id")
    lines = []
    for member in grid["jobs"]:
        point, job_id = member["point"], member["job_id"]
        axis = next((a for a in sweep_axes(grid) if a in point), None)
        if job_id not in ok.index or axis is None:
            continue
        job = ok.loc[job_id]
        tuned = pd.to_numeric(job.get("backbone_trainable_params"), errors="coerce")
        kind = "light" if job.lightweight else "heavy" if pd.notna(tuned) and tuned > 0 else None
        setting = ", ".join(f"{k}={v}" for k, v in point.items() if k not in ("regime", axis))
        lines.append({"job_id": job_id, "dataset": member["dataset"], "axis": axis, "value": str(point[axis]),
                      "regime": point["regime"], "setting": setting, "seed": member["seed"], "few": job.few,
                      "kind": kind, "split": job.split_fingerprint})
    return pd.DataFrame(lines)


def _tail_images(run: Run, job_id: str) -> int | None:
    """The smallest training class count of the job's split: the tail the axis value gives."""
    counts = (getattr(run.result(job_id), "dataset", None) or {}).get("train_class_counts")
    return int(min(counts)) if counts else None


def _image_interval(run: Run, heavy: str, light: str) -> tuple[list[float] | None, str]:
    """The paired image bootstrap of few(heavy) − few(light) for two jobs on one split, and what it was over (or
    why there is none). A damaged predictions file raises ResultFileError (the report names it)."""
    if not all("test_label" in ((run.results[j].predictions or {}).get("keys") or ()) for j in (heavy, light)):
        return None, "none: no saved test labels (results written before they were saved)"
    saved = [run.predictions(j, ("test", "test_label")) for j in (heavy, light)]
    labels = saved[0]["test_label"]
    if not np.array_equal(labels, saved[1]["test_label"]):
        return None, "none: the jobs' test splits differ"
    counts = run.result(heavy).dataset.get("train_class_counts")
    few = ClassGroups.from_counts(counts).few
    correct = [s["test"] == labels for s in saved]
    return paired_image_interval(correct[0], correct[1], labels, few), "test images (1 seed)"


def sweep_table(run: Run, grid: dict) -> pd.DataFrame | Skip:
    """Per data-set axis value and heavy/light pair: the few-shot accuracies, their difference (heavy − light,
    mean over the seeds both ran), its 95 % interval and what the interval is over. Made once per run and grid
    (the figure and the tables share it)."""
    cache = run.__dict__.setdefault("_sweep_tables", {})
    if grid["name"] not in cache:
        cache[grid["name"]] = _table(run, grid)
    return cache[grid["name"]]


def _table(run: Run, grid: dict) -> pd.DataFrame | Skip:
    members = _members(run, grid)
    if members.empty:
        return Skip(f"Grid {grid['name']}: no finished job, so no heavy − light figure.")
    kinds = members.dropna(subset=["kind"])
    lines = []
    for (dataset, axis, setting), jobs in kinds.groupby(["dataset", "axis", "setting"], sort=False):
        heavy = sorted(set(jobs[jobs.kind == "heavy"].regime))
        light = sorted(set(jobs[jobs.kind == "light"].regime))
        named = {regime: f"{regime} [{setting}]" if setting else regime for regime in heavy + light}
        for h in heavy:
            for lw in light:
                for value in sorted(set(jobs.value), key=numeric_key):
                    at = jobs[jobs.value == value]
                    lines.append(_pair(run, {"dataset": dataset, "axis": axis, "value": value, "heavy": named[h],
                                             "light": named[lw]}, at[at.regime == h], at[at.regime == lw]))
    if not lines:
        return Skip(f"Grid {grid['name']}: no heavy and lightweight regime both finished (heavy: not lightweight and "
                    f"tunes backbone tensors, e.g. full, partial; light: e.g. lora, lift_plus).")
    table = pd.DataFrame(lines)
    return table.astype({"tail images": "Int64", "seeds": "Int64"})


def _pair(run: Run, where: dict, heavy: pd.DataFrame, light: pd.DataFrame) -> dict:
    """One line of the table: `where` (data set, axis, value, the pair's names) and the two regimes' jobs there."""
    line = {**dict.fromkeys(COLUMNS), **where, "interval": None}
    both = sorted(set(heavy.seed) & set(light.seed))
    if not both:
        return {**line, "seeds": 0, "interval over": "none: no seed both finished"}
    h, lw = (r.set_index("seed").loc[both] for r in (heavy, light))
    line.update({"seeds": len(both), "tail images": _tail_images(run, h.job_id.iloc[0]),
                 "heavy few": h.few.mean(), "light few": lw.few.mean()})
    if h.few.isna().all() or lw.few.isna().all():
        tail = line["tail images"]
        return {**line, "interval over": f"none: {NO_FEW} (< {FEW_MAX} training images; the tail has {tail})"}
    line["heavy − light"] = float((h.few - lw.few).mean())
    if len(both) > 1:
        interval, over = seed_interval(h.few.to_numpy() - lw.few.to_numpy()), f"seeds ({len(both)}, paired)"
    elif h.split.iloc[0] != lw.split.iloc[0]:
        interval, over = None, "none: the jobs ran on different splits"
    else:
        interval, over = _image_interval(run, h.job_id.iloc[0], lw.job_id.iloc[0])
    return {**line, "95% CI": interval_text(interval, 2) or None, "interval over": over, "interval": interval}


def heavy_minus_light(run: Run, grid: dict):
    """The figure: per data set and data-set axis, heavy − light few-shot accuracy against the axis value, a line
    per pair (colour: the light regime, line style: the heavy one), the 95 % intervals as bars, a zero line."""
    table = sweep_table(run, grid)
    if isinstance(table, Skip):
        return table
    drawn = table.dropna(subset=["heavy − light"])
    if drawn.empty:
        return Skip(f"Grid {grid['name']}: no point has a few-shot accuracy difference (see its table).")
    panels = list(drawn.groupby(["dataset", "axis"], sort=False))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.6 * len(panels)), squeeze=False)
    heavy_styles = {h: LINE_STYLES[i % len(LINE_STYLES)] for i, h in enumerate(sorted(set(drawn.heavy)))}
    for ax, ((dataset, axis), lines) in zip(axes[:, 0], panels):
        numeric = pd.to_numeric(lines.value, errors="coerce")
        for (heavy, light), pair in lines.groupby(["heavy", "light"], sort=False):
            x = pd.to_numeric(pair.value, errors="coerce") if numeric.notna().all() else pair.value
            low = [i[0] if isinstance(i, list) else np.nan for i in pair.interval]
            high = [i[1] if isinstance(i, list) else np.nan for i in pair.interval]
            y = pair["heavy − light"].to_numpy(float)
            ax.errorbar(x, y, yerr=[np.maximum(y - low, 0), np.maximum(np.array(high) - y, 0)], capsize=3,
                        marker="o", markersize=4, linestyle=heavy_styles[heavy],
                        color=regime_colour(light.split(" ", 1)[0]), label=f"{heavy} − {light}")
        ax.axhline(0, color="black", linewidth=0.8)
        if numeric.notna().all() and (numeric > 0).all() and numeric.max() / numeric.min() >= 10:
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(numeric)), [f"{v:g}" for v in sorted(set(numeric))])
            ax.xaxis.set_minor_formatter(NullFormatter())  # the axis values only, not 2×10^1 and the like
        ax.set_xlabel(f"{axis} (tail images: {_tails(lines)})")
        ax.set_ylabel("few-shot accuracy: heavy − light (points)")
        ax.set_title(f"{grid['name']} on {dataset}: where heavy fine-tuning starts to hurt", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, _caption(grid, table)


def _tails(lines: pd.DataFrame) -> str:
    tails = lines.drop_duplicates("value").set_index("value")["tail images"]
    return ", ".join(f"{v}: {t:g}" for v, t in tails.dropna().items()) or "not recorded"


def _caption(grid: dict, table: pd.DataFrame) -> str:
    overs = set(table["interval over"].dropna())
    how = []
    if any(o.startswith("seeds") for o in overs):
        how.append("a percentile bootstrap over the seeds both regimes ran of the per-seed differences")
    if any(o.startswith("test images") for o in overs):
        how.append("a paired percentile bootstrap over the test images of the one seed both ran, each class's "
                   "images drawn again, the same ones for both jobs")
    empty = sorted(set(table[table["heavy − light"].isna()].value), key=numeric_key)
    left = f" Points without a difference (e.g. {NO_FEW}) are left out: {', '.join(empty)} (see the table)." \
        if empty else ""
    return (f"Grid {grid['name']}: few-shot test accuracy of each heavy regime (not lightweight, tunes backbone "
            f"tensors) minus each lightweight one against the data-set axis, one line per pair; below 0 the heavy "
            f"regime is worse on the tail. Bars: 95 % intervals, {' or '.join(how) or 'none'}; 1,000 resamples, fixed "
            f"seed; the table says which for each point.{left}")


def sweep_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown (HTML, Markdown): its columns, without the raw interval; None where there is no value."""
    frame = table[COLUMNS].astype(object)
    return frame.where(frame.notna(), None)


def sweep_markdown(run: Run) -> str:
    """Each sweep grid's table as Markdown ("" without any)."""
    parts = []
    for grid in run.grids:
        if not sweep_axes(grid):
            continue
        table = sweep_table(run, grid)
        if isinstance(table, Skip):
            parts.append(f"{grid['name']}: {table}")
            continue
        frame = sweep_frame(table)
        cells = [[_text(v) for v in row] for row in frame.itertuples(index=False)]
        parts.append("\n".join([f"{grid['name']}: few-shot accuracy, heavy − light (points)",
                                "| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns),
                                *("| " + " | ".join(row) + " |" for row in cells)]))
    return "\n\n".join(parts)


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)
