import pytest

from bench.cli import build_parser, selection_of
from bench.plan import plan
from bench.protocols import PROTOCOLS
from bench.training import Runtime
from regimes import REGIMES

DATASETS = ["synthetic_lt", "imagenet_lt", "places_lt", "inat2018", "cifar100_lt"]


def _jobs(*options) -> dict[tuple[str, str], object]:
    args = build_parser().parse_args(["--datasets", *DATASETS, "--regimes", "all", *options])
    return {(job.dataset, job.regime): job for job in plan(selection_of(args), Runtime()).jobs}


def test_reference_protocol_is_the_regimes_own_recipes():
    jobs = _jobs()
    for (dataset, regime), job in jobs.items():
        expected = REGIMES.get(regime).recipe
        assert job.recipe.lr == expected.lr and job.recipe.tte == expected.tte and job.protocol == "reference"
        assert job.hparam_sources == {}


def test_lift_plus_paper_applies_what_the_published_scripts_ran():
    jobs = _jobs("--protocol", "lift_plus_paper")
    assert all(job.recipe.tte for job in jobs.values())  # every regime tested with TTE
    assert jobs["imagenet_lt", "full"].recipe.lr == 1e-3 and jobs["places_lt", "full"].recipe.lr == 2e-3
    assert jobs["imagenet_lt", "partial"].recipe.lr == 1e-3 and jobs["places_lt", "partial"].recipe.lr == 2e-3
    assert jobs["cifar100_lt", "full"].recipe.lr == 5e-4  # no published value: the default, and no source
    assert "lr" not in jobs["cifar100_lt", "full"].hparam_sources
    assert all(jobs[d, "linear_probe"].recipe.lr == 0.03 for d in DATASETS)
    assert all(jobs[d, "sparse"].recipe.fraction == 0.005 for d in DATASETS)
    assert jobs["inat2018", "lift_plus"].recipe.epochs == 15 and jobs["imagenet_lt", "lift_plus"].recipe.epochs == 5
    assert jobs["inat2018", "zero_shot"].recipe.epochs == 0  # what does not train keeps 0 epochs
    assert "run_ft_methods.sh:5" in jobs["imagenet_lt", "full"].hparam_sources["lr"]
    assert jobs["imagenet_lt", "full"].protocol == "lift_plus_paper"


def test_lift_paper_protocol():
    jobs = _jobs("--protocol", "lift_paper")
    assert jobs["imagenet_lt", "adaptformer"].recipe.epochs == 10 and jobs["inat2018", "adaptformer"].recipe.epochs == 20
    assert jobs["imagenet_lt", "lora"].recipe.lr == 0.01
    assert jobs["imagenet_lt", "lora"].recipe.augmentation == "rrc_flip_bilinear"
    assert jobs["imagenet_lt", "full"].recipe.lr == 5e-4 and jobs["places_lt", "full"].recipe.lr == 1e-3
    assert jobs["inat2018", "full"].recipe.lr == 5e-3 and jobs["cifar100_lt", "full"].recipe.lr == 5e-4
    assert jobs["imagenet_lt", "linear_probe"].recipe.lr == 0.02 and jobs["inat2018", "linear_probe"].recipe.lr == 0.01
    assert jobs["imagenet_lt", "sparse"].recipe.fraction == 0.01 and jobs["places_lt", "sparse"].recipe.fraction == 0.005
    assert jobs["imagenet_lt", "full"].recipe.tte and not jobs["imagenet_lt", "lora"].recipe.tte
    assert jobs["imagenet_lt", "zero_shot"].recipe.epochs == 0


def test_command_line_settings_win_over_the_protocol_and_say_so():
    jobs = _jobs("--protocol", "lift_plus_paper", "--set", "full.lr=0.004", "--epochs", "3")
    assert jobs["imagenet_lt", "full"].recipe.lr == 0.004
    assert jobs["imagenet_lt", "full"].hparam_sources["lr"] == "--set"
    assert jobs["imagenet_lt", "full"].recipe.epochs == 3
    assert jobs["imagenet_lt", "full"].hparam_sources["epochs"] == "--epochs"


def test_protocol_is_part_of_the_job_identity():
    reference = _jobs()["synthetic_lt", "lora"]
    paper = _jobs("--protocol", "lift_plus_paper", "--set", "lora.tte=false")["synthetic_lt", "lora"]
    assert reference.recipe == paper.recipe and reference.job_id != paper.job_id


@pytest.mark.parametrize("name", ["reference", "lift_plus_paper", "lift_paper"])
def test_every_rule_names_a_field_some_regime_has(name):
    for rule in PROTOCOLS.get(name).rules:
        assert any(hasattr(REGIMES.get(r).recipe, rule.field) for r in (rule.regimes or REGIMES.names()))
