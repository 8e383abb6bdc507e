"""Report rows are recipes: two recipes of one regime are never averaged; what the manifest recorded (main jobs,
lightweight, protocol, stale data) is what the report shows; every run folder renders."""
import hashlib
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.manifest import ManifestJob, dataset_key, record_plan
from bench.job_result import recipe_id
from reports import build
from reports.build import build_report, summary_table
from reports.load import load_run
from reports.verdict import verdict

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q", "--no-report"]
HPARAMS = "reference defaults (the references tuned them on the test set)"
CLASSES = 6


def result(regime: str, seed: int = 0, *, dataset: str = "synthetic_lt", fingerprint: str = "a" * 64,
           few: float = 10.0, pct: float = 0.5, status: str = "ok", **recipe) -> dict:
    """A job result as the engine writes it, with made-up numbers (no statistics file)."""
    config = {"dataset": dataset, "dataset_config": {"type": "SyntheticConfig", "imbalance_ratio": 100},
              "data_fingerprint": fingerprint, "regime": regime, "recipe": {"epochs": 2, "lr": 0.01, **recipe},
              "protocol": "reference", "model": "ltbench-tiny", "pretrained": "none", "quick_gelu": False,
              "seed": seed}
    job_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    base = {"job_id": job_id, "label": f"{dataset}/{regime}/seed{seed}", "config": config, "status": status}
    if status != "ok":
        return {**base, "error": "RuntimeError: boom"}
    accuracy = {"top1": few + 20, "many": few + 40, "medium": few + 20, "few": few,
                "per_class_acc": [few / 100] * CLASSES}
    return {**base, "split_fingerprint": "s" * 64, "epochs": config["recipe"]["epochs"],
            "dataset": {"num_classes": CLASSES, "classnames": [f"c{i}" for i in range(CLASSES)],
                        "train_class_counts": [100, 60, 30, 15, 8, 4]},
            "metrics": {"test": accuracy, "train": {**accuracy, "top1": few + 30}},
            "statistics": {"groups": {"few": {"gap_pairwise": few / 1000}}},
            "params": {"trainable": int(pct * 1000), "trainable_pct": pct},
            "timings": {"train_s": 1.0, "total_s": 2.0, "train_images_per_s": 100.0, "peak_memory_mb": 10.0}}


def write_jobs(run_dir: Path, results: list[dict]) -> None:
    (run_dir / "jobs").mkdir(parents=True, exist_ok=True)
    for r in results:
        (run_dir / "jobs" / f"{r['job_id']}.json").write_text(json.dumps(r))


def manifest_job(r: dict, *, main: bool = True, grids: tuple[str, ...] = (), lightweight: bool = False,
                 protocol: str = "reference") -> ManifestJob:
    """The entry the CLI records when it plans the job of result `r`."""
    config = r["config"]
    return ManifestJob(job_id=r["job_id"], label=r["label"], dataset=config["dataset"], regime=config["regime"],
                       seed=config["seed"], recipe_id=recipe_id(config), dataset_key=dataset_key(config),
                       data_fingerprint=config.get("data_fingerprint", ""), main=main, grids=grids,
                       lightweight=lightweight, protocol=protocol)


def plan(run_dir: Path, results: list[dict], protocol: str = "reference", **flags) -> None:
    record_plan(run_dir, [manifest_job(r, protocol=protocol, **flags) for r in results], protocol=protocol,
                hparam_source=HPARAMS, command=["run_bench.py", "test"])


def rows(run) -> dict[tuple[str, str], int]:
    """(data set, row label) -> seeds, from the summary table."""
    table = summary_table(run)
    return {(d, r): s for d, r, s in zip(table.dataset, table.row, table.seeds)} if not table.empty else {}


@pytest.fixture(scope="module")
def two_recipes(tmp_path_factory) -> Path:
    """The bug report: `--regimes linear_probe --epochs 2`, then `--epochs 1`, into one --out (real tiny jobs).
    The manifest is rewritten here from the job files, one plan per command, whatever the CLI wrote."""
    run_dir = tmp_path_factory.mktemp("recipes") / "run"
    common = ["--datasets", "synthetic_lt", "--regimes", "linear_probe", "--out", str(run_dir), *TINY]
    assert main([*common, "--seeds", "0", "1", "--epochs", "2"]) == 0
    first = {p.name for p in (run_dir / "jobs").glob("*.json")}
    assert main([*common, "--seeds", "0", "--epochs", "1"]) == 0
    (run_dir / "manifest.json").unlink(missing_ok=True)
    for names in (first, {p.name for p in (run_dir / "jobs").glob("*.json")} - first):
        plan(run_dir, [json.loads((run_dir / "jobs" / name).read_text()) for name in sorted(names)])
    return run_dir


def test_two_recipes_of_one_regime_are_two_rows(two_recipes, capsys):
    run = load_run(two_recipes)
    assert rows(run) == {("synthetic_lt", "linear_probe [epochs=1]"): 1,
                         ("synthetic_lt", "linear_probe [epochs=2]"): 2}
    table = summary_table(run).set_index("row")
    assert table.loc["linear_probe [epochs=2]", "epochs"] == 2 and table.loc["linear_probe [epochs=1]", "epochs"] == 1
    page = build_report(two_recipes)[0].read_text()
    assert "linear_probe [epochs=1]" in page and "linear_probe [epochs=2]" in page
    assert "1.50" not in page and ">linear_probe<" not in page  # no merged row, no bare regime row
    assert HPARAMS in page and "Protocol reference (3 jobs shown)" in page
    assert build.main([str(two_recipes), "--markdown"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| linear_probe")]
    assert sorted(line.split(" | ")[:2] for line in lines) == [["| linear_probe [epochs=1]", "1"],
                                                               ["| linear_probe [epochs=2]", "2"]]


def test_two_recipes_stay_apart_in_a_folder_without_manifest(two_recipes, tmp_path):
    legacy = tmp_path / "run"
    write_jobs(legacy, [json.loads(p.read_text()) for p in (two_recipes / "jobs").glob("*.json")])
    run = load_run(legacy)
    assert run.manifest is None
    assert rows(run) == {("synthetic_lt", "linear_probe [epochs=1]"): 1,
                         ("synthetic_lt", "linear_probe [epochs=2]"): 2}
    page = build_report(legacy)[0].read_text()
    assert "no manifest.json" in page and "linear_probe [epochs=1]" in page


def test_a_run_folder_of_several_backbones_names_the_backbone_in_every_row(tmp_path):
    """One --out filled by invocations with different --model: no row may hide which backbone it ran on."""
    tiny = [result("linear_probe"), result("lift_plus", loss="focal"), result("lift_plus", loss="la")]
    rn50 = result("ssf")
    rn50["config"]["model"] = "RN50"
    rn50["job_id"] = "f" * 16
    write_jobs(tmp_path, tiny + [rn50])
    plan(tmp_path, tiny + [rn50])
    assert set(rows(load_run(tmp_path))) == {
        ("synthetic_lt", "linear_probe [model=ltbench-tiny]"), ("synthetic_lt", "ssf [model=RN50]"),
        ("synthetic_lt", "lift_plus [model=ltbench-tiny, loss=focal]"),
        ("synthetic_lt", "lift_plus [model=ltbench-tiny, loss=la]")}


def test_stale_results_and_results_of_no_plan_are_left_out_unless_all(tmp_path):
    old = [result("linear_probe", seed, few=5.0) for seed in (0, 1)]
    new = [result("linear_probe", 0, fingerprint="b" * 64, few=30.0)]
    stray = result("full", 0)
    write_jobs(tmp_path, old + new + [stray])
    plan(tmp_path, old)
    plan(tmp_path, new)  # the data set's images changed in between
    run = load_run(tmp_path)
    assert rows(run) == {("synthetic_lt", "linear_probe"): 1} and set(run.table.job_id) == {new[0]["job_id"]}
    assert any(p.startswith("2 results left out as stale") and "--all" in p for p in run.problems)
    assert any(p.startswith("1 result in jobs/ left out: no plan") for p in run.problems)
    page = build_report(tmp_path)[0].read_text()
    assert "2 results left out as stale" in page and "full" not in summary_table(run).row.tolist()
    everything = load_run(tmp_path, include_all=True)
    assert rows(everything) == {("synthetic_lt", "linear_probe [data_fingerprint=aaaaaaaa]"): 2,
                                ("synthetic_lt", "linear_probe [data_fingerprint=bbbbbbbb]"): 1,
                                ("synthetic_lt", "full"): 1}
    assert any(p.startswith("2 results included (--all) as stale") for p in everything.problems)
    assert build.main([str(tmp_path), "--all"]) == 0
    assert "linear_probe [data_fingerprint=bbbbbbbb]" in (tmp_path / "report.html").read_text()


def test_main_lightweight_and_protocol_come_from_the_manifest_not_the_registry(tmp_path):
    full = [result("full", seed, few=5.0, pct=100.0) for seed in (0, 1)]
    probe = [result("linear_probe", seed, few=20.0, pct=0.3) for seed in (0, 1)]
    lora_variant = result("lora", 0, few=40.0, pct=0.2)  # lightweight by the registry
    write_jobs(tmp_path, full + probe + [lora_variant])
    plan(tmp_path, full, protocol="lift_plus_paper")
    plan(tmp_path, probe, lightweight=True)  # the registry says linear_probe is not light
    plan(tmp_path, [lora_variant], main=False, grids=("rank",), lightweight=True)
    run = load_run(tmp_path)
    assert set(run.main.regime) == {"full", "linear_probe"}  # the grid-only lora job is no main job
    lines = verdict(run.main, "synthetic_lt")
    assert any("best light regime (linear_probe, 20.0, 2 seeds) beats full fine-tuning (5.0, 2 seeds)" in line
               for line in lines)
    assert "1 of 1 light regimes" in " ".join(lines)
    page = build_report(tmp_path)[0].read_text()
    assert "Protocol lift_plus_paper (2 jobs shown)" in page and "Protocol reference (3 jobs shown)" in page


def test_several_full_fine_tuning_rows_are_compared_one_by_one(tmp_path):
    results = [result("full", 0, few=5.0, pct=100.0, epochs=1), result("full", 0, few=15.0, pct=100.0),
               result("lora", 0, few=10.0, pct=0.2)]
    write_jobs(tmp_path, results)
    run = load_run(tmp_path)
    text = " ".join(verdict(run.main, "synthetic_lt"))
    assert "beats full fine-tuning [epochs=1] (5.0, 1 seed)" in text
    assert "trails full fine-tuning [epochs=2] (15.0, 1 seed)" in text
    assert build_report(tmp_path)[0].is_file()


@pytest.mark.parametrize("interval, says, never", [
    ([2.0, 8.0], "[+2.0, +8.0], which excludes 0", "cannot tell"),
    ([-1.5, 8.0], "includes 0: not distinguishable", "which excludes 0"),
    (None, "no interval", "excludes 0"),
])
def test_the_verdict_gives_the_few_shot_interval_and_claims_only_what_it_carries(tmp_path, interval, says, never):
    results = [result("full", 0, few=5.0, pct=100.0), result("lora", 0, few=10.0, pct=0.2)]
    write_jobs(tmp_path, results)
    run = load_run(tmp_path)
    asked = []
    text = " ".join(verdict(run.main, "synthetic_lt", few_interval=lambda a, b: asked.append((a, b)) or interval))
    assert asked == [("lora", "full")]
    assert says in text and never not in text
    assert ("cannot tell whether heavy fine-tuning hurts the tail" in text) == (interval is not None and
                                                                              interval[0] <= 0)


@pytest.mark.parametrize("case", ["all_failed", "empty", "single_regime", "grid_only", "failed_figure"])
def test_every_run_folder_renders(tmp_path, monkeypatch, case):
    (tmp_path / "jobs").mkdir()
    results = {"all_failed": [result("full", 0, status="failed"), result("lora", 1, status="failed")],
               "empty": [], "single_regime": [result("lora", 0, extra_key={"nested": [1, 2]})],
               "grid_only": [result("lora", 0, rank=4), result("lora", 0, rank=8)],
               "failed_figure": [result("lora", 0), result("full", 0, pct=100.0)]}[case]
    write_jobs(tmp_path, results)
    if case == "grid_only":
        plan(tmp_path, results, main=False, grids=("rank",))
        grid_file(tmp_path, "rank", results)
    if case == "failed_figure":
        def broken(run):
            raise ValueError("cannot draw")
        monkeypatch.setattr(build, "RUN_FIGURES", [broken, *build.RUN_FIGURES])
    html_path, pdf_path = build_report(tmp_path)
    page = html_path.read_text()
    assert pdf_path.stat().st_size > 0 and "</html>" in page
    if case == "all_failed":
        assert "synthetic_lt/full/seed0 failed: RuntimeError: boom" in page and "nothing to compare" in page
    if case == "grid_only":
        assert "Ablation grid: rank" in page and "nothing to compare" in page
    if case == "single_regime":
        assert rows(load_run(tmp_path)) == {("synthetic_lt", "lora"): 1}
    if case == "failed_figure":
        assert "figure broken could not be made: ValueError: cannot draw" in page and "<figure>" in page


def grid_file(run_dir: Path, name: str, results: list[dict]) -> None:
    (run_dir / "grids").mkdir(exist_ok=True)
    (run_dir / "grids" / f"{name}.json").write_text(json.dumps({
        "name": name, "metric": "few", "axes": {"regime": ["lora"], "rank": [4, 8]},
        "jobs": [{"point": {"regime": "lora", "rank": str(r["config"]["recipe"]["rank"])}, "dataset": "synthetic_lt",
                  "job_id": r["job_id"], "seed": r["config"]["seed"]} for r in results]}))


def test_grid_members_a_rewritten_grid_file_lacks_are_named(tmp_path):
    first = [result("lora", 0, rank=4), result("lora", 0, rank=8)]
    second = [result("lora", 0, rank=4, epochs=1), result("lora", 0, rank=8, epochs=1)]
    write_jobs(tmp_path, first + second)
    plan(tmp_path, first, main=False, grids=("rank",))
    plan(tmp_path, second, main=False, grids=("rank",))
    grid_file(tmp_path, "rank", second)  # each run of a grid rewrites its file
    run = load_run(tmp_path)
    assert [j["job_id"] for j in run.grids[0]["jobs"]] == [r["job_id"] for r in second]
    assert any(p.startswith("grid rank: 2 jobs planned in it earlier are not in grids/rank.json") for p in run.problems)
    assert "Ablation grid: rank" in build_report(tmp_path)[0].read_text()


def test_a_corrupt_manifest_stops_the_report_with_the_file_named(tmp_path, capsys):
    write_jobs(tmp_path, [result("lora", 0)])
    (tmp_path / "manifest.json").write_text("{")
    assert build.main([str(tmp_path)]) == 2
    assert f"{tmp_path / 'manifest.json'} is not a readable ltbench manifest" in capsys.readouterr().err
