import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from reports.build import build_report
from tests.data.test_cifar import write_cifar100

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q", "--no-report"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """Two data sets × four regimes × two seeds, plus a two-point grid: real tiny jobs."""
    root = tmp_path_factory.mktemp("report")
    data = write_cifar100(root / "data", per_class=30, test_per_class=3)
    grid = root / "grid.yaml"
    grid.write_text("name: init\nmetric: medium\nregime: lift_plus\naxes:\n  classifier_init: [semantic, random]\n")
    code = main(["--datasets", "synthetic_lt", "cifar100_lt", "--imbalance-ratio", "10", "--data-root", str(data),
                 "--regimes", "zero_shot", "linear_probe", "full", "lift_plus", "--seeds", "0", "1", "--epochs", "1",
                 "--grid", str(grid), "--out", str(root / "run"), *TINY])
    assert code == 0
    return root / "run"


@pytest.fixture(scope="module")
def report(run_folder) -> tuple[Path, Path]:
    """The run folder's report.html and report.pdf, built once for the tests that only read them."""
    return build_report(run_folder)


def test_report_files_and_contents(run_folder, report):
    html_path, pdf_path = report
    page = html_path.read_text()
    assert page.count("<img") >= 8 and "data:image/png;base64," in page and "http" not in page.split("<body>")[1]
    for text in ("Summary", "Findings", "synthetic_lt", "cifar100_lt", "class=\"best\"", "Ablation grid: init",
                 "paired t-test", "overall 95% CI", "few 95% CI", "Class-balanced metrics", "worst class",
                 "harmonic mean", "geometric mean", "macro-F1"):
        assert text in page
    assert "full fine-tuning" in page and "points" in page  # the computed verdict
    pngs = sorted((run_folder / "figures").glob("*.png"))
    assert len(pngs) == page.count("<figure>") and pngs[0].name == "01-group_accuracy.png"
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    if not (shutil.which("pdfinfo") and shutil.which("pdftoppm")):
        pytest.skip("no poppler-utils (.ci/run installs them from Debian)")
    pages = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True, check=True).stdout
    count = int(next(line.split()[-1] for line in pages.splitlines() if line.startswith("Pages:")))
    assert count == page.count("<figure>") + 1  # cover page + one figure per page
    out = run_folder / "pages"
    out.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(pdf_path), str(out / "p")], check=True)
    rendered = sorted(out.glob("p*.png"))
    assert len(rendered) == count and all(p.stat().st_size > 1000 for p in rendered)


def test_html_opens_in_a_headless_browser_without_console_errors(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium (.ci/run installs it from Debian)")
    html_path, _ = report
    shot = tmp_path / "shot.png"

    def open_page(url):
        return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000",
                               f"--screenshot={shot}", "--enable-logging=stderr", "--v=0", url],
                              capture_output=True, text=True, timeout=120).stderr

    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    assert "CONSOLE" in open_page(broken.as_uri())  # the check below can see console errors
    log = open_page(html_path.as_uri())
    assert [line for line in log.splitlines() if "CONSOLE" in line] == []
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        assert len(np.unique(np.asarray(image.convert("L").resize((64, 200))))) > 10  # not a blank page


def test_failed_and_missing_jobs_are_named_in_the_report(run_folder, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    jobs = {json.loads(p.read_text())["label"]: p for p in (copy / "jobs").glob("*.json")}
    full = json.loads(jobs["synthetic_lt/full/seed0"].read_text())
    jobs["synthetic_lt/full/seed0"].write_text(json.dumps({**full, "status": "failed", "error": "RuntimeError: boom"}))
    for label in ("cifar100_lt/lift_plus/seed0", "cifar100_lt/lift_plus/seed1"):
        jobs[label].unlink()
    html_path, pdf_path = build_report(copy)
    page = html_path.read_text()
    assert "synthetic_lt/full/seed0 failed: RuntimeError: boom" in page
    assert "cifar100_lt: no result for regime lift_plus" in page or "grid init" in page
    assert pdf_path.stat().st_size > 0
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_class_names_are_escaped(run_folder, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    for path in (copy / "jobs").glob("*.json"):
        result = json.loads(path.read_text())
        if result["config"]["regime"] == "full":
            names = result["dataset"]["classnames"]
            result["dataset"]["classnames"] = ["<script>alert(1)</script>"] * len(names)
            path.write_text(json.dumps(result))
    page = build_report(copy)[0].read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_markdown_table_has_mean_and_spread_over_seeds(run_folder, capsys):
    from reports.build import main as report_main

    assert report_main([str(run_folder), "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert "| regime | seeds | % backbone tuned | classifier params | overall |" in printed
    assert "few-shot gap" in printed
    lift = next(line for line in printed.splitlines() if line.startswith("| lift_plus | 2 |"))
    assert " ± " in lift and len(lift.split("|")) == 19  # 17 columns between the outer bars
    assert "| overall 95% CI |" in printed and "| macro-F1 |" in printed
    low, high = map(float, lift.split("|")[6].strip(" []").split(","))  # over the row's two seeds
    assert low <= float(lift.split("|")[5].split("±")[0]) <= high


def test_untested_classes_are_named_in_the_results_and_the_report(tmp_path, capsys, caplog):
    from reports.build import main as report_main
    from tests.data.test_options import untested_csv

    options = untested_csv(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["--datasets", "csv", "--regimes", "zero_shot", "--out", str(run), *TINY, "--set",
                 *(f"csv.{field}={value}" for field, value in options.items()), "csv.allow_untested_classes=true"]) == 0
    line = "1 class has no test images and is not in any metric: 'sea_lion'"
    assert f"data csv: {line}" in caplog.text  # a warning: shown with -q too
    result = json.loads(next((run / "jobs").glob("*.json")).read_text())
    assert result["dataset"]["untested_classes"] == {"test": ["sea_lion"]}
    assert result["metrics"]["test"]["untested_classes"] == 1 and result["metrics"]["train"]["untested_classes"] == 0
    assert build_report(run)[0].read_text().count(f"csv: {line.replace(chr(39), '&#x27;')}") == 1
    capsys.readouterr()
    assert report_main([str(run), "--markdown"]) == 0
    assert line in capsys.readouterr().out


def test_the_hyperparameter_table_names_the_script_line_and_every_own_default(tmp_path):
    """Under a paper protocol the first line of a row says which script line its recipe is, or that none ran it;
    a default that is ltbench's own names its source; any other default is LIFT-plus's."""
    from bench.protocols import PROVENANCE
    from reports.build import DEFAULT_SOURCE, hyperparameters
    from reports.load import load_run
    from tests.reports.test_rows import plan, result, write_jobs

    full = result("full", lr=5e-4, tte=False)
    full["hparam_sources"] = {"lr": "ltbench: LIFT's ImageNet-LT full fine-tuning lr",
                              PROVENANCE: "lift_plus_paper: not in the papers' scripts (...)"}
    full["config"]["protocol"] = "lift_plus_paper"
    write_jobs(tmp_path, [full])
    plan(tmp_path, [full], protocol="lift_plus_paper")
    table = hyperparameters(load_run(tmp_path)).set_index("setting")
    assert table.index[0] == PROVENANCE and table.loc[PROVENANCE, "value"] == "lift_plus_paper"
    assert "not in the papers' scripts" in table.loc[PROVENANCE, "source"]
    assert table.loc["lr", "source"] == "ltbench: LIFT's ImageNet-LT full fine-tuning lr"
    assert table.loc["tte", "source"] == table.loc["epochs", "source"] == DEFAULT_SOURCE
