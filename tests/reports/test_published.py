"""The papers' numbers ship with the package, every one with its source, and the report compares a row with one
only when the row ran the paper's setup: pass or fail at the stated tolerance, else what differs, else
"no published number"."""
import dataclasses
import hashlib
import html
import json
from pathlib import Path

import pandas as pd
import pytest

from bench.data import DATASETS, dataset_config
from bench.protocols import PROTOCOLS
from bench.registry import REGIMES
from reports.build import build_report
from reports.load import load_run
from reports.published import (KEY, METRICS, TABLE, TEXT_COLUMNS, TOLERANCE, compare, coverage, load_published,
                               paper_recipe)
from tests.reports.test_rows import plan, result, write_jobs

LIFT_RECIPE = dict(epochs=10, lr=0.01, augmentation="rrc_flip_bilinear", interpolation="bilinear",
                   tte=True)  # LIFT's scripts and configs


def test_the_table_ships_with_the_package():
    setup = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert TABLE.is_file() and '"reports" = ["published_numbers.csv"]' in setup


def test_the_table_schema():
    table = load_published()
    assert list(table.columns) == ["paper", "paper_method", "dataset", "model", "pretrained", "regime", "protocol",
                                   "settings", *METRICS, "source"]
    assert all(table[c].map(type).eq(str).all() for c in TEXT_COLUMNS)
    assert all(pd.api.types.is_float_dtype(table[m]) for m in METRICS)
    values = table[list(METRICS)]
    assert values.notna().any(axis=1).all() and ((values >= 0) & (values <= 100) | values.isna()).all().all()
    assert table.source.str.strip().str.len().gt(20).all() and table.paper.isin(["LIFT", "LIFT+"]).all()
    assert set(table.dataset) <= set(DATASETS.names()) and set(table.regime) <= set(REGIMES.names())
    assert set(table.protocol) <= set(PROTOCOLS.names()) and not table.duplicated(KEY).any()
    for _, entry in table.iterrows():
        paper_recipe(entry)  # every protocol and setting applies to its regime


def test_lift_is_adaptformer_with_lifts_recipe():
    table = load_published()
    entry = table[(table[KEY] == ["cifar100_lt", "adaptformer", "ViT-B-16", "openai"]).all(axis=1)].iloc[0]
    assert entry.top1 == 81.7 and entry.paper_method == "LIFT" and "Tables 1-4" in entry.source
    recipe = paper_recipe(entry)
    assert {k: recipe[k] for k in LIFT_RECIPE} == LIFT_RECIPE and recipe["loss"] == "la"


def paper_job(dataset: str, regime: str, top1: float, seed: int = 0, model: str = "ViT-B-16",
              pretrained: str = "openai", **changes) -> dict:
    """A finished job on the paper's setup (recipe: the regime's defaults with `changes`), measuring `top1`."""
    recipe = dataclasses.asdict(dataclasses.replace(REGIMES.get(regime).recipe, **changes))
    job = result(regime, seed, dataset=dataset, **recipe)
    data = dataset_config(dataset)
    job["config"].update(model=model, pretrained=pretrained, quick_gelu=True,
                         dataset_config={"type": type(data).__name__, **dataclasses.asdict(data)})
    job["job_id"] = hashlib.sha256(json.dumps(job["config"], sort_keys=True).encode()).hexdigest()[:16]
    job["metrics"]["test"]["top1"] = top1
    return job


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[pd.DataFrame, str]:
    """LIFT on CIFAR-100-LT 0.3 above the paper (two seeds), on IR 10 2 points under it, a recipe changed
    (epochs=1), a regime the papers give no number for, and LIFT's recipe on random weights."""
    run_dir = tmp_path_factory.mktemp("published") / "run"
    jobs = [paper_job("cifar100_lt", "adaptformer", 81.7 + 0.3 + d, seed, **LIFT_RECIPE)
            for seed, d in ((0, -0.1), (1, 0.1))]
    jobs += [paper_job("cifar100_lt_ir10", "adaptformer", 84.9 - 2, **LIFT_RECIPE),
             paper_job("cifar100_lt_ir50", "adaptformer", 83.1, **{**LIFT_RECIPE, "epochs": 1}),
             paper_job("cifar100_lt", "lora", 80.0),
             paper_job("imagenet_lt", "adaptformer", 78.3, pretrained="none", **LIFT_RECIPE)]
    write_jobs(run_dir, jobs)
    plan(run_dir, jobs)
    page = build_report(run_dir)[0].read_text()
    return compare(load_run(run_dir)).set_index(["dataset", "row"]), page


def line(table: pd.DataFrame, dataset: str, regime: str) -> pd.Series:
    rows = table.loc[dataset]
    return rows[rows.index.str.startswith(regime)].iloc[0]


def test_a_row_within_the_tolerance_passes(report):
    table, _ = report
    lift = line(table, "cifar100_lt", "adaptformer")
    assert (lift.published, lift.seeds, lift.difference, lift.verdict) == (81.7, 2, "+0.30", "pass")
    assert lift.measured == pytest.approx(82.0) and lift.metric == "overall" and lift.model == "ViT-B-16 (openai)"


def test_a_row_outside_the_tolerance_fails(report):
    table, _ = report
    lift = line(table, "cifar100_lt_ir10", "adaptformer")
    assert (lift.published, lift.difference, lift.verdict) == (84.9, "-2.00", "fail")


def test_a_row_with_another_recipe_gets_no_verdict(report):
    table, _ = report
    changed = line(table, "cifar100_lt_ir50", "adaptformer")
    assert changed.verdict == "recipe differs from the paper's: epochs=1 (paper: 10)"
    assert changed.difference == "+0.00"


def test_rows_the_papers_give_no_number_for_say_so(report):
    table, _ = report
    assert line(table, "cifar100_lt", "lora").verdict == "no published number"
    random_weights = line(table, "imagenet_lt", "adaptformer")
    assert random_weights.verdict == "no published number" and pd.isna(random_weights.published)


def test_the_report_has_the_section(report):
    _, page = report
    section = page.split("<h2>Published numbers</h2>")[1].split("<h2>")[0]
    assert f"±{TOLERANCE:g} points" in section and "reports/published_numbers.csv" in section
    assert html.escape(coverage()) in section
    for text in (">pass<", ">fail<", ">+0.30<", ">-2.00<", ">no published number<", "epochs=1 (paper: 10)"):
        assert text in section, text
    assert section.count(">pass<") == 1 and section.count(">fail<") == 1


def test_zero_shot_is_compared_on_its_test_time_fields_only(tmp_path):
    """zero_shot does not train: a learning rate other than the protocol's is no difference, TTE off or another
    test resize filter is."""
    jobs = [paper_job("imagenet_lt", "zero_shot", 68.0, tte=True, interpolation="bilinear"),
            paper_job("imagenet_lt", "zero_shot", 60.0, 1, interpolation="bilinear"),
            paper_job("imagenet_lt", "zero_shot", 60.0, 2, tte=True)]
    jobs[1]["config"]["recipe"]["lr"] = 0.5
    jobs[1]["job_id"], jobs[2]["job_id"] = "f" * 16, "e" * 16
    write_jobs(tmp_path, jobs)
    verdicts = sorted(compare(load_run(tmp_path)).verdict)
    assert verdicts == ["pass", 'recipe differs from the paper\'s: interpolation="bicubic" (paper: "bilinear")',
                        "recipe differs from the paper's: tte=false (paper: true)"]


def test_the_report_says_what_the_table_leaves_out():
    table = load_published().head(1).assign(many=50.0)
    assert coverage(table) == ("The table holds overall, many accuracy (LIFT: LIFT); no source could be read for "
                               "medium, few, any LIFT+ number, so they are left out.")
