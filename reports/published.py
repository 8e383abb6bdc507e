"""The papers' published numbers against the run's measured ones, so a reader sees at once whether a row
reproduces LIFT (ICML 2024) or LIFT+ (2025).

`published_numbers.csv` ships with the package: one line per data set, ltbench regime and backbone (open_clip
name and weights) that a paper published a number for, with its `source` (paper, table where known, and where
the value was read). It holds only numbers traced to a named source; what could not be sourced is left out, not
guessed: today that is every many/medium/few split, every LIFT+ number and every regime other than LIFT and
zero-shot CLIP (the report says which metrics the table lacks).

A paper's method is an ltbench regime with a recipe: `regime`, made the paper's by `protocol` (bench.protocols,
whose rules name the reference scripts) and the line's own `settings` (`field=value`, space-separated). LIFT is
`adaptformer` under `lift_paper` (10 epochs, 20 on iNaturalist, lr 0.01, RandomResizedCrop + flip and resizes
bilinear, TTE).
A number applies to a report row only when data set, regime, model and weights match and the row ran the
paper's setup (recipe, QuickGELU for OpenAI weights, the data set's default split options); a row that differs
is shown with what differs instead of a pass or a fail.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from bench.data import dataset_config
from bench.overrides import apply_overrides
from bench.protocols import PROTOCOLS
from bench.registry import REGIMES

from .load import Run

TABLE = Path(__file__).with_name("published_numbers.csv")
PAPERS = ("LIFT", "LIFT+")
TOLERANCE = 0.5  # points of accuracy within which a measured value reproduces the published one
METRICS = {"top1": "overall", "many": "many", "medium": "medium", "few": "few"}
TEXT_COLUMNS = ["paper", "paper_method", "dataset", "model", "pretrained", "regime", "protocol", "settings", "source"]
KEY = ["dataset", "regime", "model", "pretrained"]
TEST_TIME = ("tte", "expand", "interpolation")  # the recipe fields a regime that does not train still uses
DATA_FIELDS = ("imbalance_ratio", "split_seed", "level")  # data set options that choose images or classes
NO_NUMBER = "no published number"
COLUMNS = ["dataset", "row", "model", "metric", "published", "source", "measured", "seeds", "difference", "verdict"]


def load_published(path: Path = TABLE) -> pd.DataFrame:
    """The shipped table: text columns as strings (empty settings as ''), metrics as floats (NaN: unpublished)."""
    empty_is_unpublished = {metric: [""] for metric in METRICS}
    return pd.read_csv(path, dtype={**{c: str for c in TEXT_COLUMNS}, **dict.fromkeys(METRICS, float)},
                       keep_default_na=False, na_values=empty_is_unpublished)


def _plain(value):
    """JSON's view of a value (tuples as lists), so a recipe read from a job file compares equal."""
    return json.loads(json.dumps(value))


def paper_recipe(entry: pd.Series) -> dict:
    """The recipe the paper ran for `entry`: the regime's defaults, the protocol's rules, the line's settings,
    epochs left open taking the data set's default (as bench.plan resolves them)."""
    regime = REGIMES.get(entry.regime)
    recipe, _ = PROTOCOLS.get(entry.protocol).apply(entry.dataset, entry.regime, regime.recipe, regime.trains,
                                                    entry.model, entry.pretrained)
    settings = dict(item.split("=", 1) for item in entry.settings.split())
    recipe = apply_overrides(recipe, settings, entry.regime)
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=dataset_config(entry.dataset).epochs)
    return _plain(dataclasses.asdict(recipe))


def _differs(name: str, have, want) -> str:
    return f"{name}={json.dumps(have)} (paper: {json.dumps(want)})"


def setup_differences(config: dict, entry: pd.Series) -> list[str]:
    """What the job's setup has that the paper's has not: recipe fields (only the test-time ones for a regime
    that does not train), the activation and the data set options that choose images or classes."""
    want, have = paper_recipe(entry), config.get("recipe") or {}
    fields = sorted(set(want) | set(have)) if REGIMES.get(entry.regime).trains else list(TEST_TIME)
    lines = [_differs(f, have.get(f), want.get(f)) for f in fields if have.get(f) != want.get(f)]
    if config.get("quick_gelu") is not True:  # OpenAI's weights were trained with QuickGELU
        lines.append(_differs("quick_gelu", config.get("quick_gelu"), True))
    data, default = config.get("dataset_config") or {}, dataclasses.asdict(dataset_config(entry.dataset))
    return lines + [_differs(f, data.get(f), default[f]) for f in DATA_FIELDS if f in default
                    and data.get(f) != default[f]]


def _verdict(difference: float, differences: list[str]) -> str:
    if pd.isna(difference):  # an empty group: nothing to hold against the paper
        return "not measured"
    if differences:
        return "recipe differs from the paper's: " + ", ".join(differences)
    return "pass" if round(abs(difference), 6) <= TOLERANCE else "fail"


def _lines(run: Run, dataset: str, row: str, jobs: pd.DataFrame, published: pd.DataFrame) -> list[dict]:
    """The report lines of one row: one per metric the paper published for it, or one saying there is none."""
    config = run.result(jobs.job_id.iloc[0]).config
    model, pretrained = config.get("model"), config.get("pretrained")
    base = {"dataset": dataset, "row": row, "model": f"{model} ({pretrained})", "seeds": jobs.seed.nunique()}
    match = published[(published[KEY] == [dataset, config.get("regime"), model, pretrained]).all(axis=1)]
    if match.empty:
        return [{**base, "metric": METRICS["top1"], "measured": jobs.top1.mean(), "verdict": NO_NUMBER}]
    entry = match.iloc[0]
    differences = setup_differences(config, entry)
    lines = []
    for metric, title in METRICS.items():
        if pd.notna(entry[metric]):
            measured = jobs[metric].mean()
            difference = measured - entry[metric]
            lines.append({**base, "metric": title, "published": entry[metric], "source": entry.source,
                          "measured": measured, "difference": None if pd.isna(difference) else f"{difference:+.2f}",
                          "verdict": _verdict(difference, differences)})
    return lines


def compare(run: Run, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per data set and row of the run's main jobs: the published value of each metric the papers give for its
    data set, regime and backbone, the measured mean over its seeds, their difference and pass (within
    ±TOLERANCE points) or fail; `no published number` where the papers give none."""
    published = load_published() if published is None else published
    lines = [line for (dataset, row), jobs in run.main.groupby(["dataset", "row"])
             for line in _lines(run, dataset, row, jobs, published)]
    return pd.DataFrame(lines, columns=COLUMNS)


def coverage(published: pd.DataFrame | None = None) -> str:
    """One sentence on what the shipped table holds and what it leaves out, for the report."""
    published = load_published() if published is None else published
    have = [title for metric, title in METRICS.items() if published[metric].notna().any()]
    gaps = [title for metric, title in METRICS.items() if published[metric].isna().all()]
    gaps += [f"any {paper} number" for paper in PAPERS if paper not in set(published.paper)]
    held = "; ".join(f"{paper}: {', '.join(sorted(set(rows.paper_method)))}"
                     for paper, rows in published.groupby("paper"))
    text = f"The table holds {', '.join(have)} accuracy ({held})"
    return text + (f"; no source could be read for {', '.join(gaps)}, so they are left out." if gaps else ".")
