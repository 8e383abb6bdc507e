import json

import pytest

from bench.overrides import OverrideError
from bench.plan import Selection, plan
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
    assert Selection().regime_names() == REGIMES.names()
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
    assert by_regime["lift_plus"].hparam_sources == {"bottleneck": "--set", "lr": "grid g"}
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
