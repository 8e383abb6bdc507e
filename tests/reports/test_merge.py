"""`report RUN [RUN ...] --out DIR`: two studies in one report, a job found in both counted once, every row naming
its runs; what cannot be merged is refused with one line and exit 2."""
import json
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from reports import build
from reports.build import summary_table
from reports.load import load_run
from reports.merge import merge_runs
from tests.reports.test_rows import plan, result, write_jobs


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """Folders a and b (relative to the working directory): linear probe seeds 0-1 in a, seeds 1-2 in b (seed 1
    the same job, copied), LIFT+ in a only and a full fine-tuning on RN50 in b."""
    monkeypatch.chdir(tmp_path)
    a = [result("linear_probe", 0, few=10.0), result("linear_probe", 1, few=14.0), result("lift_plus", 0, few=20.0)]
    rn50 = result("full", 0, few=8.0)
    rn50["config"]["model"], rn50["job_id"] = "RN50", "f" * 16
    b = [a[1], result("linear_probe", 2, few=18.0), rn50]
    for name, jobs in (("a", a), ("b", b)):
        write_jobs(tmp_path / name, jobs)
        plan(tmp_path / name, jobs)
    return tmp_path


def test_two_folders_merge_a_shared_job_counts_once_rows_name_their_runs(two_runs, capsys):
    assert build.main(["a", "b", "--out", "both", "--label", "b=later"]) == 0
    run = merge_runs([load_run("a"), load_run("b")], ["a", "later"], "both")
    assert len(run.results) == 5 and run.home("f" * 16) == Path("b")
    seeds = dict(zip(summary_table(run).row, summary_table(run).seeds))
    assert seeds == {"linear_probe [model=ltbench-tiny] (a+later)": 3, "lift_plus [model=ltbench-tiny] (a)": 1,
                     "full [model=RN50] (later)": 1}
    few = summary_table(run).set_index("row").few
    assert few["linear_probe [model=ltbench-tiny] (a+later)"] == pytest.approx(14.0)  # (10 + 14 + 18) / 3
    page = (two_runs / "both" / "report.html").read_text()
    assert "Merged from 2 run folders" in page and "later = " in page and "(a+later)" in page
    assert not (two_runs / "a" / "report.html").exists() and not (two_runs / "b" / "report.html").exists()


def test_the_cli_hands_several_runs_to_the_report(two_runs, capsys):
    assert cli_main(["report", "a", "b", "--out", "both", "--markdown"]) == 0
    assert "| linear_probe [model=ltbench-tiny] (a+b) | 3 |" in capsys.readouterr().out


def test_a_shared_job_with_other_numbers_is_refused_naming_both_files(two_runs, capsys):
    path = two_runs / "b" / "jobs" / f"{result('linear_probe', 1)['job_id']}.json"
    data = json.loads(path.read_text())
    data["metrics"]["test"]["few"] = 99.0
    path.write_text(json.dumps(data))
    assert build.main(["a", "b", "--out", "both"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "different numbers" in err
    assert f"both a/jobs/{path.name} and b/jobs/{path.name} with" in err  # the folders as given
    assert not (two_runs / "both").exists()


def test_a_shared_job_run_twice_with_the_same_numbers_is_counted_once_whatever_it_took(two_runs):
    """The same job trained in both folders (not copied): its evaluation time differs, its numbers do not."""
    path = two_runs / "b" / "jobs" / f"{result('linear_probe', 1)['job_id']}.json"
    data = json.loads(path.read_text())
    data["metrics"]["test"]["seconds"] = data["metrics"]["test"].get("seconds", 0.0) + 0.25
    path.write_text(json.dumps(data))
    assert build.main(["a", "b", "--out", "both"]) == 0
    assert len(merge_runs([load_run("a"), load_run("b")], ["a", "b"], "both").results) == 5


def test_a_failed_copy_gives_way_to_the_finished_one(two_runs):
    failed = result("linear_probe", 1, status="failed")
    write_jobs(two_runs / "a", [failed])
    run = merge_runs([load_run("a"), load_run("b")], ["a", "b"], "both")
    assert run.results[failed["job_id"]].status == "ok" and run.home(failed["job_id"]) == Path("b")


@pytest.mark.parametrize("args, message", [
    (["a", "b"], "needs a folder of its own: add --out DIR"),
    (["a", "missing", "--out", "both"], "missing is not a run folder"),
    (["a", "b", "--out", "b"], "--out b is a run folder"),
    (["a", "a", "--out", "both"], "run folder a is given twice"),
    (["a", "--label", "a=x"], "drop --label"),
    (["a", "b", "--out", "both", "--label", "c=x"], "c is not one of the run folders given"),
    (["a", "b", "--out", "both", "--label", "b"], "write RUN=NAME"),
    (["a", "b", "--out", "both", "--label", "b=a"], "two run folders are labelled a"),
    (["a", "b", "--out", "both", "--label", "b=x/y"], "may not hold"),
    (["--latex", "a", "b", "--out", "both"], "--latex a: the file must end in .tex"),
])
def test_bad_report_options_exit_2_with_one_line(two_runs, capsys, args, message):
    assert build.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("ltbench report: error: ")
    assert not (two_runs / "both").exists()


def test_two_folders_of_one_name_need_labels(two_runs, capsys):
    (two_runs / "x").mkdir()
    (two_runs / "a").rename(two_runs / "x" / "b")
    assert build.main(["x/b", "b", "--out", "both"]) == 2
    assert "labelled b: tell them apart with --label RUN=NAME" in capsys.readouterr().err
    assert build.main(["x/b", "b", "--out", "both", "--label", "x/b=first"]) == 0
