import json
import logging
import sys
import types

import pandas as pd
import pytest

from bench.cli import main
from tests.data.test_cifar import write_cifar100

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q", "--no-report"]  # reports: tests/reports


def run(tmp_path, *args):
    return main(["--datasets", "synthetic_lt", "--out", str(tmp_path / "run"), *TINY, *args])


@pytest.mark.parametrize("args, listed", [
    (["--datasets", "nope"], "cifar100_lt"),
    (["--datasets", "synthetic_lt", "--regimes", "nope"], "linear_probe"),
    (["--datasets", "synthetic_lt", "--model", "ViT-Q-99"], "ViT-B-16"),
    (["--datasets", "synthetic_lt", "--set", "nope.lr=1"], "zero_shot"),
    (["--datasets", "synthetic_lt", "--set", "full.nope=1"], "weight_decay"),
])
def test_unknown_names_exit_2_listing_valid_ones(capsys, args, listed):
    with pytest.raises(SystemExit) as info:
        main(args + ["--pretrained", "none"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err or "ViT-Q-99" in err
    assert listed in err


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--datasets", "--regimes", "--model", "--pretrained", "--data-root", "--download", "--out",
                   "--seeds", "--epochs", "--imbalance-ratio", "--set", "--device", "--precision", "--workers",
                   "--micro-batch-size", "--force"):
        assert option in out


def test_help_shows_the_commands_and_the_option_groups(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for heading in ("commands:", "selection:", "recipe:", "data:", "execution:", "output:"):
        assert f"\n{heading}" in out
    for command in ("run", "report", "perf", "list"):
        assert f"\n    {command} " in out


def test_run_is_the_default_command():
    from bench.cli import build_parser

    options = ["--datasets", "synthetic_lt", "--seeds", "3", "4", "--set", "lora.rank=2", "-q"]
    explicit, implicit = build_parser().parse_args(["run", *options]), build_parser().parse_args(options)
    assert (explicit.command, implicit.command) == ("run", None)
    assert {**vars(explicit), "command": None} == vars(implicit)


def test_options_before_a_command_or_unknown_ones_exit_2(capsys):
    for argv in (["-q", "run"], ["--epochs", "3", "list"], ["run", "--nope"], ["nope"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "options before the command 'run' are not read" in capsys.readouterr().err


@pytest.mark.parametrize("command, module", [("report", "reports.build"), ("perf", "bench.perf")])
def test_report_and_perf_get_the_rest_of_the_command_line_untouched(monkeypatch, command, module):
    received = []
    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(main=lambda argv: received.append(argv) or 3))
    rest = ["--all", "runs/x", "--s", "5", "--model", "m"]  # --s: ours would call it ambiguous
    assert main([command, *rest]) == 3 and received == [rest]


@pytest.mark.parametrize("argv", [["list"], ["--list"], ["--datasets", "synthetic_lt", "--list"]])
def test_list_shows_every_setting_with_type_default_range_and_help(capsys, argv):
    from bench.data import DATASETS
    from regimes import REGIMES

    assert main(argv) == 0
    out = capsys.readouterr().out
    headings = {line.split(":")[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert set(DATASETS.names()) | set(REGIMES.names()) <= headings
    lora = out[out.index("\nlora: "):]
    rank = next(line.split(None, 4) for line in lora.splitlines() if line.lstrip().startswith("rank "))
    assert rank[:4] == ["rank", "int", "|", "None"] and "None: 2^max" in rank[4]
    scale = next(line for line in lora.splitlines() if line.lstrip().startswith("classifier_scale "))
    assert scale.split()[1:4] == ["float", "25.0", ">"] and scale.rstrip().endswith("sigma of the cosine classifier")
    undocumented, start = [], None
    for line in out.splitlines():  # every setting has a help line, a subclass's too (imagenet_lt.image_dir)
        if line.lstrip().startswith("setting "):
            start = line.index("help")
        elif start is not None and line.startswith("    ") and not line.lstrip().startswith("-"):
            if not line[start:].strip():
                undocumented.append(line.split()[0])
    assert undocumented == []


def test_list_names_the_source_of_every_default_that_is_not_lift_plus(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out

    def setting_line(section: str, name: str) -> str:
        block = out[out.index(f"\n{section}"):]
        return next(line for line in block.splitlines() if line.lstrip().startswith(f"{name} "))

    assert "ltbench: LIFT's ImageNet-LT full fine-tuning lr" in setting_line("full: ", "lr")
    assert setting_line("full: ", "lr").rstrip().endswith("LIFT-plus: 0.02")
    assert setting_line("lift_plus: ", "tte").rstrip().endswith("LIFT-plus: False")
    assert setting_line("inat2018_genus\n", "epochs").rstrip().endswith("LIFT-plus: 5")
    assert "LIFT-plus:" not in setting_line("lora: ", "lr") + setting_line("imagenet_lt\n", "epochs")


def test_missing_data_stops_before_training(tmp_path, capsys):
    code = main(["--datasets", "cifar100_lt", "--data-root", str(tmp_path), "--out", str(tmp_path / "run"), *TINY])
    assert code == 2
    assert "--download" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_run_writes_json_per_job_and_table_then_resumes(tmp_path, capsys):
    assert run(tmp_path, "--regimes", "zero_shot", "linear_probe", "--epochs", "1", "--seeds", "0", "1") == 0
    jobs = sorted((tmp_path / "run" / "jobs").glob("*.json"))
    assert len(jobs) == 4
    results = [json.loads(p.read_text()) for p in jobs]
    assert {r["config"]["regime"] for r in results} == {"zero_shot", "linear_probe"}
    assert len({r["split_fingerprint"] for r in results}) == 1  # identical splits across regimes and seeds
    for r in results:
        assert {"config", "split_fingerprint", "metrics", "params", "timings"} <= set(r)
        assert len(r["metrics"]["test"]["per_class_acc"]) == 20
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    assert set(table.loc[table.regime == "zero_shot", "epochs"]) == {0}
    assert "linear_probe" in capsys.readouterr().out  # summary table printed

    stamps = {p: p.stat().st_mtime_ns for p in jobs}
    assert run(tmp_path, "--regimes", "zero_shot", "linear_probe", "--epochs", "1", "--seeds", "0", "1") == 0
    assert {p: p.stat().st_mtime_ns for p in jobs} == stamps  # finished jobs are not rerun
    assert run(tmp_path, "--regimes", "zero_shot", "--seeds", "0", "--force") == 0
    assert sum(p.stat().st_mtime_ns != stamps[p] for p in jobs) == 1


def test_failed_job_is_recorded_and_others_go_on(tmp_path, capsys):
    code = run(tmp_path, "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
               "--set", "linear_probe.lr=1e38", "linear_probe.classifier=linear", "linear_probe.classifier_init=random")
    assert code == 1
    table = pd.read_csv(tmp_path / "run" / "results.csv").set_index("regime")
    assert table.loc["zero_shot", "status"] == "ok" and table.loc["linear_probe", "status"] == "failed"
    assert "NonFiniteLossError" in table.loc["linear_probe", "error"]
    assert "linear_probe" in capsys.readouterr().err


def test_imbalance_ratio_option_reaches_cifar(tmp_path):
    root = write_cifar100(tmp_path / "data", per_class=50, test_per_class=2)
    code = main(["--datasets", "cifar100_lt", "--imbalance-ratio", "10", "--data-root", str(root),
                 "--regimes", "zero_shot", "--out", str(tmp_path / "run"), "--no-train-eval", *TINY])
    assert code == 0
    result = json.loads(next((tmp_path / "run" / "jobs").glob("*.json")).read_text())
    assert result["config"]["dataset_config"]["imbalance_ratio"] == 10.0
    assert result["dataset"]["min_count"] == 5 and result["dataset"]["max_count"] == 50


def test_mixed_precision_on_cpu_stops_before_training(tmp_path, capsys):
    assert run(tmp_path, "--precision", "bf16") == 2
    assert "needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_all_regimes_on_identical_splits_with_parameter_columns(tmp_path, capsys):
    from regimes import REGIMES

    assert run(tmp_path, "--regimes", "all", "--epochs", "1", "--no-train-eval") == 0
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert sorted(table["regime"]) == sorted(REGIMES.names()) and set(table["status"]) == {"ok"}
    assert table["split_fingerprint"].nunique() == 1
    by_regime = table.set_index("regime")
    assert by_regime.loc["zero_shot", "trainable_params"] == 0 and by_regime.loc["zero_shot", "epochs"] == 0
    assert by_regime.loc["lora", "epochs"] == 1
    assert by_regime.loc["linear_probe", "trainable_params"] < by_regime.loc["lift_plus", "trainable_params"] \
        < by_regime.loc["full", "trainable_params"]
    assert 0 < by_regime.loc["lift_plus", "trainable_pct"] < 1.0
    header = capsys.readouterr().out.splitlines()[0]
    assert "trainable" in header and "%backbone" in header and "epochs" in header


def test_regime_options_and_shared_settings_from_the_command_line(tmp_path):
    from bench.cli import build_parser, selection_of
    from bench.plan import plan
    from bench.training import Runtime

    def jobs(*sets):
        args = build_parser().parse_args(["--datasets", "synthetic_lt", "--regimes", "lora", "lift_plus", "full",
                                          "--set", *sets])
        return {job.regime: job for job in plan(selection_of(args), Runtime()).jobs}

    by_name = jobs("lora.rank=8", "all.tte=true", "lift_plus.tte=false", "all.bottleneck=2")
    assert by_name["lora"].recipe.rank == 8 and by_name["lora"].recipe.tte is True
    assert by_name["full"].recipe.tte is True and by_name["lift_plus"].recipe.tte is False  # own scope wins
    assert by_name["lift_plus"].recipe.bottleneck == 2
    assert by_name["lora"].job_id != jobs("lora.rank=4")["lora"].job_id
    with pytest.raises(ValueError, match="no selected regime has a setting 'rank2'"):
        jobs("all.rank2=3")


def test_no_arguments_means_the_offline_demo_on_the_bundled_model():
    from bench.cli import build_parser, selection_of

    def selected(*argv):
        selection = selection_of(build_parser().parse_args(argv))
        return selection.datasets, selection.model, selection.pretrained

    assert selected() == (("demo_lt",), "ltbench-demo", "bundled")
    assert selected("--datasets", "cifar100_lt", "demo_lt")[1:] == ("ViT-B-16", "openai")
    assert selected("--pretrained", "none")[1:] == ("ltbench-demo", "none")


def test_shortened_demo_run_writes_a_complete_report(tmp_path, capsys):
    from bench.plan import DEMO_REGIMES

    out = tmp_path / "demo"
    assert main(["--set", "demo_lt.num_classes=10", "--epochs", "1", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out.resolve() / 'report.html'}" in printed
    table = pd.read_csv(out / "results.csv")
    assert sorted(table[table.remedy.isna()]["regime"]) == sorted(DEMO_REGIMES) and set(table["status"]) == {"ok"}
    assert set(table["model"]) == {"ltbench-demo"} and set(table["pretrained"]) == {"bundled"}
    wise = table[table.remedy.notna()]  # the demo's derived result: WiSE-FT on full fine-tuning, one job per α
    assert set(wise.remedy) == {"wise"} and set(wise.regime) == {"full"} and len(wise) == 11
    page = (out / "report.html").read_text()
    assert "<h2>Remedies</h2>" in page and "WiSE-FT" in page
    assert all(regime in page for regime in DEMO_REGIMES) and "missing" not in page.lower()
    assert "The embedded demo ran 9 of ltbench&#x27;s 16 regimes" in page and "Not run: adapter, bitfit, coop" in page
    assert "95% class-bootstrap interval of the difference" in page
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    # the feature statistics' columns (bench.statistics), and their figure
    main_jobs = table[table.remedy.isna()].set_index("regime")  # not the remedies derived from them
    statistics = main_jobs[["frechet", "frechet_few", "nc1_train", "nc1_test", "cka_train", "cka_test",
                            "cka_test_few"]]
    assert statistics.notna().all().all() and (main_jobs.frechet_undefined >= 0).all()
    assert (statistics.loc[["zero_shot", "linear_probe"], ["cka_train", "cka_test"]] == 1.0).all().all()  # frozen
    assert (statistics.loc["full", ["cka_train", "cka_test"]] < 1.0).all()
    assert "Feature statistics and few-shot accuracy" in page


def test_the_demo_runs_the_papers_comparison_and_a_text_side_regime_and_all_runs_every_regime():
    from bench.cli import build_parser, selection_of
    from bench.plan import DEMO_REGIMES
    from regimes import REGIMES

    def regimes(*argv):
        return selection_of(build_parser().parse_args(argv)).regime_names()

    assert regimes() == list(DEMO_REGIMES)
    assert {"zero_shot", "linear_probe", "full", "partial", "lora", "adaptformer", "lift_plus"} <= set(DEMO_REGIMES)
    assert any(REGIMES.get(name).text_side for name in DEMO_REGIMES)
    assert regimes("--regimes", "all") == REGIMES.names()
    assert regimes("--datasets", "synthetic_lt") == REGIMES.names()  # only a demo_lt-only run is the demo
    assert regimes("--datasets", "demo_lt", "synthetic_lt") == REGIMES.names()


@pytest.mark.parametrize("options, cpus, workers", [
    ([], 8.0, 8), (["--ray-cpus-per-job", "4"], 4.0, 4), (["--ray-cpus-per-job", "4", "--loader-workers", "2"], 4.0, 2),
    (["--ray-gpus-per-job", "0"], 1.0, 0),
])
def test_ray_tasks_reserve_the_cores_their_loader_workers_use(options, cpus, workers):
    from bench.cli import build_parser, loader_workers, ray_cpus_per_job

    args = build_parser().parse_args(["--backend", "ray", *options])
    slots = ["cuda" if args.ray_gpus_per_job > 0 else "cpu"]
    assert ray_cpus_per_job(args) == cpus and loader_workers(args, slots) == workers


def test_local_gpu_jobs_share_the_cores_unless_loader_workers_is_given():
    from bench.cli import build_parser, loader_workers
    from bench.scheduler.devices import loader_workers_per_job

    slots = ["cuda:0", "cuda:0"]
    assert loader_workers(build_parser().parse_args([]), slots) == loader_workers_per_job(slots) >= 1
    assert loader_workers(build_parser().parse_args([]), ["cpu"]) == 0
    assert loader_workers(build_parser().parse_args(["--loader-workers", "3"]), slots) == 3


def test_resize_on_device_reaches_the_runtime_and_is_off_by_default():
    from bench.cli import _runtime, build_parser

    assert _runtime(build_parser().parse_args([]), ["cpu"]).resize_on_device is False
    assert _runtime(build_parser().parse_args(["--resize-on-device"]), ["cpu"]).resize_on_device is True


def test_overridden_values_are_said_in_the_plan_summary_before_training(tmp_path, caplog):
    (tmp_path / "file").write_text("")
    with caplog.at_level(logging.WARNING, logger="ltbench"):
        code = main(["--datasets", "synthetic_lt", "--regimes", "linear_probe", "--epochs", "1", "--set",
                     "linear_probe.epochs=2", "--out", str(tmp_path / "file" / "run"), *TINY])
    assert code == 2  # the run stops at its --out, after the plan summary and before any training
    lines = [r.getMessage() for r in caplog.records if r.name == "ltbench" and r.levelno == logging.WARNING]
    assert lines == ["linear_probe.epochs = 2 from --set (overrides --epochs 1)"]


def test_a_prompt_tokenizer_that_cannot_load_stops_the_run_before_training_whatever_the_weights(monkeypatch):
    """Random weights and Ray tasks compute no prompt embedding before training, yet every job that encodes
    class prompts would fail; a run that encodes none needs no tokenizer."""
    import dataclasses

    from bench.cli import preflight
    from bench.models import backbone
    from bench.models.backbone import MissingPackageError
    from bench.training import Runtime
    from tests.conftest import make_job

    monkeypatch.setattr(backbone, "installed", lambda package: package != "transformers")

    def siglip(regime, **recipe):
        return dataclasses.replace(make_job(regime, **recipe), model="ViT-B-16-SigLIP")

    with pytest.raises(MissingPackageError, match="the tokenizer of ViT-B-16-SigLIP needs the transformers package"):
        preflight([siglip("zero_shot")], Runtime(device="cpu"), None)
    preflight([siglip("linear_probe", classifier_init="class_mean")], Runtime(device="cpu"), None)
