"""Damaged run folders: a report names each missing or damaged file once, in one line with what to do, leaves out
only the parts that need it, and exits 2; never a traceback, never numpy's allow_pickle advice."""
import json
import re
from pathlib import Path
from unittest import mock

import matplotlib
import numpy as np
import pytest

import bench.results as results_module
from bench.cli import main
from bench.job_result import outcome_from_dict
from bench.results import RunStore
from reports import build
from tests.reports.test_rows import CLASSES, result

matplotlib.use("Agg")
TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q"]


def kept_apart(run_dir: Path) -> Path:
    """A run folder of two made-up finished jobs (no training) in which every kind of file a result refers to
    is a file of its own: per-class arrays, the data-set summary, feature statistics and class means."""
    store = RunStore(run_dir)
    rng = np.random.default_rng(0)
    counts = np.array([100, 60, 30, 15, 8, 4])
    with mock.patch.object(results_module, "INLINE_LIMIT", 0):  # every per-class list leaves the JSON
        for regime, few in (("zero_shot", 10.0), ("linear_probe", 20.0)):
            data = result(regime, few=few)
            stats = {"train_count": counts, "test_count": np.full(CLASSES, 3),
                     "gap_pairwise": rng.normal(0.0, 0.05, CLASSES), "train_hist": rng.integers(0, 5, (CLASSES, 40)),
                     "test_hist": rng.integers(0, 5, (CLASSES, 40)),
                     "test_means": rng.standard_normal((CLASSES, 16)).astype(np.float32)}
            data["statistics"]["file"] = store.save_statistics(data["job_id"], stats)
            store.save(outcome_from_dict(data))
    return run_dir


def damage(run_dir: Path, folder: str, how: str = "garbage") -> Path:
    """Damage the first file of `folder` (garbage of the same size, cut in half, or gone); a grid file is made
    up (the folder has none)."""
    if folder == "grids":
        (run_dir / "grids").mkdir(exist_ok=True)
        (run_dir / "grids" / "lr.json").write_text('{"name": "lr", "jobs": ')
        return run_dir / "grids" / "lr.json"
    path = sorted((run_dir / folder).iterdir())[0]
    size = path.stat().st_size
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: size // 2] if how == "truncated" else b"x" * size)
    return path


def report(run_dir: Path, capsys) -> tuple[int, list[str], str]:
    """The report command's exit status, its error lines and the page it wrote."""
    code = build.main([str(run_dir)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "allow_pickle" not in err
    return code, err.splitlines(), (run_dir / "report.html").read_text()


def test_an_intact_folder_of_files_kept_apart_reports_everything(tmp_path, capsys):
    code, errors, page = report(kept_apart(tmp_path), capsys)
    assert code == 0 and errors == [] and "could not be made" not in page
    drawn = {p.stem.split("-", 1)[1] for p in (tmp_path / "figures").glob("*.png")}
    assert {"per_class_vs_frequency", "feature_histograms-synthetic_lt", "class_mean_similarity-synthetic_lt"} <= drawn


@pytest.mark.parametrize("folder, how, fix, lost", [
    ("stats", "garbage", "delete it and rerun {label} with --force", "feature_histograms"),
    ("stats", "truncated", "delete it and rerun {label} with --force", "feature_histograms"),
    ("means", "garbage", "delete it and rerun synthetic_lt/", "class_mean_similarity"),
    ("means", "missing", "is missing; rerun synthetic_lt/", "class_mean_similarity"),
    ("arrays", "garbage", "delete it and rerun {label} with --force", "per_class_vs_frequency"),
    ("arrays", "missing", "is missing; rerun {label} with --force", "per_class_vs_frequency"),
    ("datasets", "garbage", "delete it and rerun synthetic_lt/", "per_class_vs_frequency"),
    ("jobs", "garbage", "rerun the run command that planned it", None),
    ("grids", "garbage", "rerun the run command with that --grid", None),
])
def test_a_damaged_file_is_named_once_with_the_fix_and_costs_only_what_needs_it(tmp_path, capsys, folder, how, fix,
                                                                                lost):
    path = damage(kept_apart(tmp_path), folder, how)
    own = folder in ("stats", "arrays")  # named after the job whose own file it is
    owner = json.loads((tmp_path / "jobs" / f"{path.stem}.json").read_text())["label"] if own else None
    code, errors, page = report(tmp_path, capsys)
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("ltbench report: error: ") and str(path) in errors[0], errors
    assert fix.format(label=owner) in errors[0]
    missing = re.findall(r"<li>([^<]*)</li>", page)
    assert any(str(path) in line for line in missing)  # "What is missing" says it too
    drawn = {p.stem.split("-", 1)[1] for p in (tmp_path / "figures").glob("*.png")}
    assert "group_accuracy" in drawn and "<h2>Summary</h2>" in page  # what needs no such file is all there
    if lost:
        assert lost not in "".join(drawn) and f"figure {lost}" in page
    if folder == "means":  # only the class-mean heatmap reads them
        assert {"feature_histograms-synthetic_lt", "feature_gap_vs_frequency-synthetic_lt"} <= drawn


def test_a_damaged_row_file_changes_nothing(tmp_path, capsys):
    """rows/ only spares the run command from parsing results: the report reads the results themselves."""
    damage(kept_apart(tmp_path), "rows")
    code, errors, page = report(tmp_path, capsys)
    assert code == 0 and errors == [] and "could not be made" not in page


def test_the_run_command_names_a_damaged_file_of_an_earlier_job_once(tmp_path, caplog):
    command = ["--datasets", "synthetic_lt", "--regimes", "zero_shot", "--out", str(tmp_path), *TINY]
    assert main(command) == 0
    path = damage(tmp_path, "stats")
    assert main(command) == 0  # the job is done: its result is intact, only the report loses a figure
    named = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(named) == 1 and named[0].startswith("report: the feature statistics") and "--force" in named[0]
    assert "Traceback" not in caplog.text
