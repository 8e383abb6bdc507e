import json

import pytest

from bench.overrides import OverrideError
from bench.plan import DEMO_REGIMES, Selection, plan
from bench.registry import UnknownNameError
from bench.training import Runtime
from regimes import REGIMES

TINY = {"datasets": ("synthetic_lt",), "model": "ltbench-tiny", "pretrained": "none"}


def _grid(tmp_path, text: str, name: str = "g") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{text}")
    return str(path)


def _plan(**options):
    return plan(Selection(**{**TINY, **options}), Runtime())


def test_model_and_pretrained_defaults_follow_the_data_sets():
    assert (Selection().model, Selection().pretrained) == ("ltbench-demo", "bundled")
    assert (Selection(datasets=("demo_lt", "cifar100_lt")).model, Selection(datasets=("cifar100_lt",)).pretrained) \
        == ("ViT-B-16", "openai")
    assert Selection(model="ltbench-tiny").pretrained == "openai"
    assert Selection(pretrained="none").model == "ltbench-demo"


def test_regimes_default_to_all_without_grids_and_to_none_with_them(tmp_path):
    assert Selection(datasets=("synthetic_lt",)).regime_names() == REGIMES.names()
    assert Selection().regime_names() == list(DEMO_REGIMES)  # the demo's (a demo_lt-only run)
    assert Selection(regimes=("lora", "full", "lora")).regime_names() == ["lora", "full"]
    assert Selection(regimes=("lora", "all")).regime_names() == REGIMES.names()
    assert Selection(grids=(_grid(tmp_path, "regime: lora\naxes:\n  rank: [2]\n"),)).regime_names() == []
    with pytest.raises(UnknownNameError, match="linear_probe"):
        Selection(regimes=("nope",)).regime_names()


def test_jobs_are_data_sets_by_regimes_by_seeds_with_the_seeds_sharing_a_recipe():
    planned = _plan(regimes=("zero_shot", "lora"), seeds=(0, 1, 2))
    assert sorted(job.label for job in planned.jobs) == sorted(
        f"synthetic_lt/{regime}/seed{seed}" for regime in ("zero_shot", "lora") for seed in (0, 1, 2))
    assert planned.main_ids == {job.job_id for job in planned.jobs} and planned.grids == {}
    entries = planned.manifest
    assert all(entry.main and entry.grids == () for entry in entries)
    assert len({entry.recipe_id for entry in entries if entry.regime == "lora"}) == 1


def test_set_applies_to_grid_points_but_the_grid_keeps_the_values_it_varies(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  lr: [0.01, 0.03]\n")
    planned = _plan(grids=(grid,), overrides=("lora.lr=0.5", "lora.rank=8", "all.tte=true"), epochs=2)
    assert sorted(job.recipe.lr for job in planned.jobs) == [0.01, 0.03]
    for job in planned.jobs:
        assert (job.recipe.rank, job.recipe.tte, job.recipe.epochs) == (8, True, 2)
        assert job.hparam_sources == {"lr": "grid g", "rank": "--set", "tte": "--set", "epochs": "--epochs"}
    record = json.loads(planned.grids["g"])
    assert {member["job_id"] for member in record["jobs"]} == {job.job_id for job in planned.jobs}


def test_a_grid_that_varies_the_epochs_wins_over_the_epochs_option(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  epochs: [1, 3]\n")
    planned = _plan(grids=(grid,), epochs=2, overrides=("lora.epochs=7",))
    assert sorted(job.recipe.epochs for job in planned.jobs) == [1, 3]
    assert {job.hparam_sources["epochs"] for job in planned.jobs} == {"grid g"}


def test_set_of_a_regime_reaches_only_its_points_and_all_only_the_fields_a_regime_has(tmp_path):
    grid = _grid(tmp_path, "axes:\n  regime: [linear_probe, lift_plus]\n  lr: [0.01]\n")
    planned = _plan(grids=(grid,), overrides=("linear_probe.tte=true", "all.bottleneck=4"))
    by_regime = {job.regime: job for job in planned.jobs}
    assert by_regime["linear_probe"].recipe.tte is True and by_regime["lift_plus"].recipe.bottleneck == 4
    assert by_regime["lift_plus"].hparam_sources == {"bottleneck": "--set", "lr": "grid g",
                                                     "tte": "ltbench: LIFT+'s reported numbers are 5-crop TTE "
                                                            "(LIFT-plus scripts/run_main.sh tests every lift+ run "
                                                            "with test_only True tte True)"}
    assert by_regime["linear_probe"].hparam_sources == {"tte": "--set", "lr": "grid g"}
    with pytest.raises(OverrideError, match="no selected regime has a setting 'rank'"):
        _plan(grids=(grid,), overrides=("all.rank=4",))


def test_data_set_options_apply_to_grid_jobs(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  rank: [2, 4]\n")
    planned = _plan(grids=(grid,), overrides=("synthetic_lt.num_classes=10",), imbalance_ratio=5.0)
    assert {(job.dataset_config.num_classes, job.dataset_config.imbalance_ratio) for job in planned.jobs} \
        == {(10, 5.0)}


def test_a_grid_point_equal_to_a_main_job_is_one_job_in_both(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  tte: [false, true]\n")
    planned = _plan(regimes=("lora",), grids=(grid,))
    assert len(planned.jobs) == 2
    entries = {entry.job_id: entry for entry in planned.manifest}
    (main_id,) = planned.main_ids
    assert entries[main_id].main and entries[main_id].grids == ("g",)
    assert [entry.main for entry in entries.values()].count(False) == 1


def test_main_jobs_of_a_selection_built_either_way_are_the_same_jobs():
    from bench.cli import build_parser, selection_of

    args = build_parser().parse_args(["--datasets", "synthetic_lt", "--regimes", "lora", "--model", "ltbench-tiny",
                                      "--pretrained", "none", "--seeds", "3", "--set", "lora.rank=2"])
    from_args = plan(selection_of(args), Runtime())
    direct = _plan(regimes=("lora",), seeds=(3,), overrides=("lora.rank=2",))
    assert [job.job_id for job in from_args.jobs] == [job.job_id for job in direct.jobs]


@pytest.mark.parametrize("options, message", [
    ({"overrides": ("nope.lr=1",)}, "neither a data set nor a regime"),
    ({"overrides": ("lora.epochs=0",), "regimes": ("lora",)}, "needs at least 1 epoch"),
    ({"datasets": ("imagenet_lt",), "imbalance_ratio": 10.0}, "none of the data sets imagenet_lt"),
    ({"regimes": ("zero_shot",), "epochs": 3}, r"--epochs 3: none of the regimes zero_shot trains"),
])
def test_bad_selections_fail_while_planning(options, message):
    with pytest.raises(OverrideError, match=message):
        _plan(**options)


VALIDATED = ("synthetic_lt.val_fraction=0.2",)


def test_select_plans_one_main_job_per_candidate_of_each_regime_that_has_the_field():
    planned = _plan(regimes=("zero_shot", "lora"), seeds=(0, 1), overrides=VALIDATED,
                    select=("lr=0.01,0.02", "rank=2,4"))
    lora = [job for job in planned.jobs if job.regime == "lora"]
    assert len(lora) == 8 and len([job for job in planned.jobs if job.regime == "zero_shot"]) == 4  # no rank
    assert {(job.recipe.lr, job.recipe.rank) for job in lora} == {(lr, r) for lr in (0.01, 0.02) for r in (2, 4)}
    assert all(job.hparam_sources["lr"] == job.hparam_sources["rank"] == "--select" for job in lora)
    assert planned.main_ids == {job.job_id for job in planned.jobs}
    record = json.loads(planned.selection)
    assert record["metric"] == "mean_class_acc" and record["axes"] == {"lr": ["0.01", "0.02"], "rank": ["2", "4"]}
    assert sorted(member["job_id"] for member in record["jobs"]) == sorted(job.job_id for job in planned.jobs)
    assert _plan(regimes=("lora",)).selection is None


@pytest.mark.parametrize("options, message", [
    ({"select": ("nope=1,2",), "overrides": VALIDATED}, "no selected regime has a setting 'nope'; valid: .*lr"),
    ({"select": ("lr",), "overrides": VALIDATED}, "expected FIELD=VALUE1,VALUE2"),
    ({"select": ("lr=1", "lr=2"), "overrides": VALIDATED}, "given twice"),
    ({"select": ("lr=abc",), "overrides": VALIDATED}, "lr"),
    ({"select": ("lr=0.01,0.02",), "select_metric": "nope"}, "not one of"),
    ({"select": ("lr=0.01,0.02",)}, "synthetic_lt has none: ask for one with --set synthetic_lt.val_fraction="),
    ({"select": ("lr=0.01",), "datasets": ("imagenet_lt",)}, "--set imagenet_lt.val_list=val.txt"),
])
def test_bad_selects_fail_while_planning(options, message):
    with pytest.raises(OverrideError, match=message):
        _plan(regimes=("lora",), **options)


@pytest.mark.parametrize("options, message", [
    ({"datasets": ("cifar100_lt_ir50",), "overrides": ("cifar100_lt.imbalance_ratio=10",)},
     r"--set cifar100_lt.imbalance_ratio: cifar100_lt is not one of this run's data sets \(cifar100_lt_ir50\)"),
    ({"datasets": ("synthetic_lt", "demo_lt", "synthetic_lt"), "overrides": ("places_lt.split_dir=/x",)},
     r"places_lt is not one of this run's data sets \(synthetic_lt, demo_lt\); add it to --datasets"),
    ({"regimes": ("zero_shot", "linear_probe"), "overrides": ("linear_probe.lr=0.1", "lora.rank=4")},
     r"--set lora.rank: lora is neither in --regimes nor in a grid \(this run's regimes: zero_shot, linear_probe\)"),
])
def test_set_of_a_scope_not_in_the_run_is_refused(options, message):
    with pytest.raises(OverrideError, match=message):
        _plan(**options)


def test_set_of_a_regime_that_only_a_grid_runs_is_taken(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  lr: [0.01]\n")
    planned = _plan(regimes=("zero_shot",), grids=(grid,), overrides=("lora.rank=2",))
    assert [job.recipe.rank for job in planned.jobs if job.regime == "lora"] == [2]


def _epochs(**options) -> tuple[dict[str, int], tuple[str, ...]]:
    planned = _plan(regimes=("linear_probe", "lora", "zero_shot"), **options)
    return {job.regime: job.recipe.epochs for job in planned.jobs}, planned.overridden


@pytest.mark.parametrize("options, epochs, overridden", [
    ({}, {"linear_probe": 5, "lora": 5, "zero_shot": 0}, ()),
    ({"epochs": 1}, {"linear_probe": 1, "lora": 1, "zero_shot": 0}, ()),
    ({"epochs": 1, "overrides": ("linear_probe.epochs=2",)}, {"linear_probe": 2, "lora": 1, "zero_shot": 0},
     ("linear_probe.epochs = 2 from --set (overrides --epochs 1)",)),
    ({"epochs": 1, "overrides": ("all.epochs=3", "lora.epochs=2")}, {"linear_probe": 3, "lora": 2, "zero_shot": 3},
     ("linear_probe.epochs = 3 from --set all.epochs (overrides --epochs 1)",
      "lora.epochs = 2 from --set (overrides --epochs 1, --set all.epochs=3)")),
    ({"epochs": 1, "overrides": ("synthetic_lt.epochs=4",)}, {"linear_probe": 4, "lora": 4, "zero_shot": 0},
     ("linear_probe.epochs = 4 from --set synthetic_lt.epochs (overrides --epochs 1)",
      "lora.epochs = 4 from --set synthetic_lt.epochs (overrides --epochs 1)")),
    ({"overrides": ("synthetic_lt.epochs=4", "lora.epochs=2", "all.epochs=4")},
     {"linear_probe": 4, "lora": 2, "zero_shot": 4},
     ("lora.epochs = 2 from --set (overrides --set all.epochs=4, --set synthetic_lt.epochs=4)",)),
    ({"epochs": 2, "overrides": ("lora.epochs=2",)}, {"linear_probe": 2, "lora": 2, "zero_shot": 0}, ()),
])
def test_the_more_specific_source_wins_and_every_loser_is_named(options, epochs, overridden):
    assert _epochs(**options) == (epochs, overridden)


def test_a_grid_point_wins_over_set_and_the_set_value_is_named(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  lr: [0.01, 0.03]\n  rank: [2]\n")
    planned = _plan(regimes=("lora",), grids=(grid,), overrides=("lora.lr=0.5", "all.rank=2"), epochs=2)
    assert sorted(job.recipe.lr for job in planned.jobs) == [0.01, 0.03, 0.5]
    assert planned.overridden == ("lora.lr = 0.01, 0.03 from grid g (overrides --set lora.lr=0.5)",)


def test_a_select_candidate_wins_over_set_and_the_set_value_is_named():
    planned = _plan(regimes=("lora",), overrides=VALIDATED + ("lora.lr=0.5",), select=("lr=0.01,0.02",))
    assert sorted(job.recipe.lr for job in planned.jobs) == [0.01, 0.02]
    assert planned.overridden == ("lora.lr = 0.01, 0.02 from --select (overrides --set lora.lr=0.5)",)


def test_set_wins_over_the_protocol_and_the_protocol_value_is_named():
    planned = _plan(regimes=("linear_probe",), protocol="lift_plus_paper", overrides=("linear_probe.lr=0.1",),
                    datasets=("imagenet_lt",), model="ViT-B-16", pretrained="openai")  # a setting its scripts ran
    assert planned.jobs[0].recipe.lr == 0.1 and planned.jobs[0].recipe.tte is True
    assert planned.overridden == (
        "linear_probe.lr = 0.1 from --set (overrides --protocol lift_plus_paper (lr=0.03))",)


def test_a_data_set_option_wins_over_the_imbalance_ratio_option():
    planned = _plan(regimes=("zero_shot",), datasets=("synthetic_lt", "demo_lt"), imbalance_ratio=10.0,
                    overrides=("synthetic_lt.imbalance_ratio=20",))
    assert {job.dataset: job.dataset_config.imbalance_ratio for job in planned.jobs} == \
        {"synthetic_lt": 20.0, "demo_lt": 10.0}
    assert planned.overridden == ("synthetic_lt.imbalance_ratio = 20.0 from --set (overrides --imbalance-ratio 10)",)


def test_a_run_without_competing_sources_keeps_its_job_ids():
    """The ids of main jobs of a plain run, whatever resolves the recipe (tests/test_fixed_run.py pins them)."""
    planned = _plan(regimes=("lora", "zero_shot"), epochs=2, overrides=("lora.rank=2", "all.tte=true"))
    assert planned.overridden == ()
    ids = {job.regime: job.job_id for job in planned.jobs}
    again = _plan(regimes=("zero_shot", "lora"), epochs=2, overrides=("all.tte=true", "lora.rank=2"))
    assert ids == {job.regime: job.job_id for job in again.jobs}


def test_the_plan_lists_every_metric_it_picks_on_or_plots(tmp_path):
    grid = _grid(tmp_path, "metric: few\nregime: lora\naxes:\n  rank: [2]\n")
    planned = _plan(regimes=("lora",), grids=(grid,), overrides=VALIDATED, select=("lr=0.01,0.02",),
                    select_metric="many")
    assert [measured[:3] for measured in planned.measured] == [
        ("--select-metric many", "many", ("validation", "test")), ("grid g: metric few", "few", ("test",))]
    select, grid = planned.measured
    assert set(select.job_ids) == planned.main_ids and select.group is None and grid.group is None
    assert set(grid.job_ids) == {member["job_id"] for member in json.loads(planned.grids["g"])["jobs"]}
    assert _plan(regimes=("lora",)).measured == []


def test_epochs_reach_a_grid_regime_that_trains(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  rank: [2]\n")
    assert {job.regime: job.recipe.epochs for job in _plan(regimes=("zero_shot",), grids=(grid,), epochs=3).jobs} \
        == {"zero_shot": 0, "lora": 3}


def test_a_data_set_axis_plans_one_job_per_point_on_the_points_own_data(tmp_path):
    grid = _grid(tmp_path, "metric: few\naxes:\n  regime: [full, lora]\n  synthetic_lt.imbalance_ratio: [10, 50]\n")
    main = _plan(regimes=("lora",))
    planned = _plan(regimes=("lora",), grids=(grid,), overrides=("synthetic_lt.imbalance_ratio=20",
                                                                 "synthetic_lt.max_per_class=40"))
    grid_jobs = [job for job in planned.jobs if job.job_id not in planned.main_ids]
    assert sorted((job.regime, job.dataset_config.imbalance_ratio) for job in grid_jobs) == [
        ("full", 10), ("full", 50), ("lora", 10), ("lora", 50)]
    assert len({job.job_id for job in grid_jobs}) == 4
    assert all(job.dataset_config.max_per_class == 40 for job in planned.jobs)  # --set reaches the points
    assert planned.overridden == ("synthetic_lt.imbalance_ratio = 10.0, 50.0 from grid g (overrides --set "
                                  "synthetic_lt.imbalance_ratio=20)",)
    record = json.loads(planned.grids["g"])
    assert {m["job_id"]: float(m["point"]["synthetic_lt.imbalance_ratio"]) for m in record["jobs"]} == {
        job.job_id: job.dataset_config.imbalance_ratio for job in grid_jobs}
    assert [m.where for m in planned.measured] == [f"grid g at synthetic_lt.imbalance_ratio={r}: metric few"
                                                   for r in (10, 50)]
    assert {m.group for m in planned.measured} == {"g"}
    assert {job.job_id for job in main.jobs} == {job.job_id for job in _plan(regimes=("lora",), grids=(grid,)).jobs
                                                 if job.job_id in main.main_ids}  # main jobs keep their ids


def test_a_grid_with_data_set_axes_runs_only_on_the_data_sets_it_names(tmp_path):
    grid = _grid(tmp_path, "regime: lora\naxes:\n  demo_lt.imbalance_ratio: [10, 50]\n")
    with pytest.raises(OverrideError, match=r"grid g varies options of demo_lt, which is not one of this run's data "
                                            r"sets \(synthetic_lt\); add it to --datasets"):
        _plan(grids=(grid,))
    with pytest.raises(OverrideError, match=r"--datasets synthetic_lt: no job runs on it .*g on demo_lt\); drop it"):
        _plan(datasets=("synthetic_lt", "demo_lt"), grids=(grid,))
    planned = _plan(datasets=("synthetic_lt", "demo_lt"), grids=(grid,), regimes=("zero_shot",))
    assert sorted((job.dataset, job.regime) for job in planned.jobs) == [
        ("demo_lt", "lora"), ("demo_lt", "lora"), ("demo_lt", "zero_shot"), ("synthetic_lt", "zero_shot")]


def test_a_point_without_the_grids_metric_is_said_and_a_grid_without_any_is_refused(tmp_path, caplog):
    from bench.cli import check_metrics

    small = ("synthetic_lt.max_per_class=30", "synthetic_lt.test_per_class=2")  # ratio 1: no class under 20 images
    some = _grid(tmp_path, "metric: few\nregime: lora\naxes:\n  synthetic_lt.imbalance_ratio: [1, 10]\n", "some")
    check_metrics(_plan(grids=(some,), overrides=small), Runtime())
    assert "grid some at synthetic_lt.imbalance_ratio=1: metric few: the test split of synthetic_lt has no " \
           "few-shot class" in caplog.text and "its jobs run" in caplog.text
    assert "imbalance_ratio=10" not in caplog.text
    none = _grid(tmp_path, "metric: few\nregime: lora\naxes:\n  synthetic_lt.imbalance_ratio: [1]\n", "none")
    with pytest.raises(OverrideError, match="grid none at synthetic_lt.imbalance_ratio=1: metric few: the test split"):
        check_metrics(_plan(grids=(none,), overrides=small), Runtime())
