"""The paper table of two studies merged (`report A B --out M --csv-wide`): its numbers are those of the job JSONs,
each job counted once, and the wide CSV reads back to the same table."""
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from reports import build
from reports.load import load_run
from reports.merge import merge_runs
from bench.ppt import ppt
from reports.paper_table import COLUMNS, paper_table, wide_frame
from tests.reports.test_rows import plan, result, write_jobs

# row label -> (regime, model): the rows the two studies below make
ROWS = {"lift_plus [model=ltbench-tiny] (a)": ("lift_plus", "ltbench-tiny"),
        "linear_probe [model=RN50] (study_b)": ("linear_probe", "RN50"),
        "linear_probe [model=ltbench-tiny] (a+study_b)": ("linear_probe", "ltbench-tiny")}
DATASETS = ("cifar100_lt", "synthetic_lt")


def _job(regime: str, seed: int, dataset: str, few: float, model: str = "ltbench-tiny") -> dict:
    r = result(regime, seed, dataset=dataset, few=few)
    r["config"]["model"] = model
    r["params"]["backbone_trainable"] = 178_236 if regime == "lift_plus" else 0  # PPT: accuracy × a parameter factor
    r["job_id"] = f"{abs(hash((regime, seed, dataset, model))):016x}"[:16]
    if dataset == "cifar100_lt":  # a data set with no medium-shot class: no number, never a 0
        r["metrics"]["test"]["medium"] = None
    return r


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict:
    """Study a: linear probe and LIFT+ on two data sets, 3 seeds; study b: the linear probe's seed 2 again (the
    same job, copied) and seed 3, and one RN50 seed. Paths as given to the command, relative to `root`."""
    root = tmp_path_factory.mktemp("studies")
    a = [_job(regime, seed, dataset, 10 + 3 * seed + (5 if regime == "lift_plus" else 0) + len(dataset) % 3)
         for regime in ("linear_probe", "lift_plus") for seed in (0, 1, 2) for dataset in DATASETS]
    shared = [j for j in a if j["config"]["regime"] == "linear_probe" and j["config"]["seed"] == 2]
    b = shared + [_job("linear_probe", 3, d, 17.5) for d in DATASETS] + [_job("linear_probe", 0, "synthetic_lt", 30.0,
                                                                              "RN50")]
    for name, jobs in (("a", a), ("b", b)):
        write_jobs(root / name, jobs)
        plan(root / name, jobs)
    return {"root": root, "a": root / "a", "b": root / "b", "jobs": {j["job_id"]: j for j in a + b}}


def expected(jobs: dict, row: str, dataset: str, group: str) -> tuple[float, float | None, int] | None:
    """Mean, sd and seeds of a cell recomputed from the job JSONs with the standard library (PPT from each job's
    top-1 and backbone parameters)."""
    regime, model = ROWS[row]
    values = [ppt(j["metrics"]["test"]["top1"], j["params"]["backbone_trainable"]) if group == "ppt" else
              j["metrics"]["test"][COLUMNS[group]] for j in jobs.values()
              if (j["config"]["regime"], j["config"]["model"], j["config"]["dataset"]) == (regime, model, dataset)]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def merged(studies):
    runs = [load_run(studies["a"]), load_run(studies["b"])]
    return merge_runs(runs, ["a", "study_b"], studies["root"] / "merged")


def test_the_table_holds_the_job_jsons_numbers_each_job_once(studies):
    table = paper_table(merged(studies))
    assert table.rows == sorted(ROWS) and table.datasets == list(DATASETS)
    assert table.seeds[("linear_probe [model=ltbench-tiny] (a+study_b)", "synthetic_lt")] == 4  # seeds 0-3, 2 once
    assert ("linear_probe [model=RN50] (study_b)", "cifar100_lt") not in table.seeds
    for row in ROWS:
        for dataset in DATASETS:
            for group in COLUMNS:
                want, got = expected(studies["jobs"], row, dataset, group), table.cells.get((row, dataset, group))
                assert (got is None) == (want is None), (row, dataset, group)
                if want:
                    assert got.mean == pytest.approx(want[0]) and got.n == want[2]
                    assert got.sd == pytest.approx(want[1]) if want[1] is not None else pd.isna(got.sd)
    assert table.protocols == ["reference"] and table.backbones == ["RN50 (none)", "ltbench-tiny (none)"]


def test_csv_wide_reads_back_to_the_table(studies, capsys):
    root = studies["root"]
    out = root / "csv_out"
    assert build.main([str(studies["a"]), str(studies["b"]), "--out", str(out), "--label", f"{studies['b']}=study_b",
                       "--csv-wide"]) == 0
    assert f"table: {out / 'table_wide.csv'}" in capsys.readouterr().out
    back = pd.read_csv(out / "table_wide.csv")
    assert list(back.row) == sorted(ROWS)
    assert list(back.columns[:4]) == ["row", "cifar100_lt/seeds", "cifar100_lt/many/mean", "cifar100_lt/many/sd"]
    pd.testing.assert_frame_equal(back, wide_frame(paper_table(merged(studies))), check_dtype=False)
    line = back.set_index("row").loc["linear_probe [model=RN50] (study_b)"]
    assert line["synthetic_lt/seeds"] == 1 and pd.isna(line["synthetic_lt/few/sd"])  # one seed: no sd, not 0
    assert line["synthetic_lt/few/mean"] == 30.0 and pd.isna(line["cifar100_lt/few/mean"])
    assert back["cifar100_lt/medium/mean"].isna().all()  # the group without a class stays empty


def test_a_named_csv_file_and_a_wrong_suffix(studies, capsys):
    target = studies["root"] / "paper" / "main.csv"
    assert build.main([str(studies["a"]), "--csv-wide", str(target)]) == 0
    assert pd.read_csv(target).row.tolist() == ["lift_plus", "linear_probe"]  # one run: its own row labels
    assert Path(studies["a"] / "report.html").is_file()
    assert build.main([str(studies["a"]), "--csv-wide", str(studies["root"] / "main.txt")]) == 2
    err = capsys.readouterr().err
    assert "--csv-wide" in err and "must end in .csv" in err and "Traceback" not in err
    json.dumps(err)  # one plain message
