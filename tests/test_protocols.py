"""Protocols as data. Every relevant line of the references' scripts is a row here, checked against the recipe
`run --protocol` plans for its (data set, regime, backbone): the line's options, and the code base's config
defaults (written out below from LIFT-plus's and LIFT's configs) for every other field. Jobs that no line ran keep
ltbench's defaults and say so; ltbench's own defaults name their source under every protocol."""
import dataclasses
import re

import pytest

from bench.cli import build_parser, selection_of
from bench.data import DATASETS, dataset_config
from bench.overrides import OverrideError
from bench.plan import Selection, plan
from bench.protocols import NOT_IN_SCRIPTS, OWN_DEFAULTS, PROTOCOLS, PROVENANCE, Weights, own_default_notes
from bench.training import Runtime
from regimes import REGIMES

B16, L14, L14_336, RN50 = (("ViT-B-16", "openai"), ("ViT-L-14", "openai"), ("ViT-L-14-336", "openai"),
                           ("RN50", "openai"))
IN21K = ("in21k_vit_b16", "openai")  # `openai`, the CLI's default tag, means the reference's weights for it

# LIFT-plus's config defaults in ltbench's fields: utils/config.py, configs/method/*.yaml, configs/backbone/*.yaml
LIFT_PLUS_CONFIG = dict(lr=0.02, batch_size=128, momentum=0.9, weight_decay=5e-4, loss="la", classifier="cosine",
                        classifier_scale=25.0, classifier_init="semantic", augmentation="minimalist",
                        mda_func="convex", tte=False, expand=None, interpolation="bicubic")
LIFT_PLUS_EPOCHS = 5
METHOD_CONFIG = {"coop": dict(epochs=50, batch_size=32, lr=0.002, augmentation="rrc_flip", classifier="text"),
                 "clip_adapter": dict(classifier="text"), "proj_tuning": dict(classifier="text")}
# LIFT's: configs/model/*.yaml (10 epochs, lr 0.01) and trainer.py's transforms (torchvision's default bilinear)
LIFT_CONFIG = {**LIFT_PLUS_CONFIG, "lr": 0.01, "augmentation": "rrc_flip_bilinear", "interpolation": "bilinear"}
LIFT_EPOCHS = 10

# one row per LIFT-plus script line: (file:line, ltbench data set, regime, backbone, the line's options)
LIFT_PLUS_ROWS = [
    ("run_ft_methods.sh:3", "imagenet_lt", "zero_shot", B16, {"tte": True}),
    ("run_ft_methods.sh:13", "places_lt", "zero_shot", B16, {"tte": True}),
    ("run_ft_methods.sh:4", "imagenet_lt", "linear_probe", B16, {"lr": 0.03, "tte": True}),
    ("run_ft_methods.sh:14", "places_lt", "linear_probe", B16, {"lr": 0.03, "tte": True}),
    ("run_ft_methods.sh:5", "imagenet_lt", "full", B16, {"lr": 0.001, "tte": True}),
    ("run_ft_methods.sh:15", "places_lt", "full", B16, {"lr": 0.002, "tte": True}),
    ("run_ft_methods.sh:6", "imagenet_lt", "sparse", B16, {"fraction": 0.005, "lr": 0.02, "tte": True}),
    ("run_ft_methods.sh:16", "places_lt", "sparse", B16, {"fraction": 0.005, "lr": 0.02, "tte": True}),
    ("run_ft_methods.sh:7", "imagenet_lt", "bitfit", B16, {"tte": True}),
    ("run_ft_methods.sh:17", "places_lt", "bitfit", B16, {"tte": True}),
    ("run_ft_methods.sh:8", "imagenet_lt", "vpt", B16, {"tte": True}),
    ("run_ft_methods.sh:18", "places_lt", "vpt", B16, {"tte": True}),
    ("run_ft_methods.sh:9", "imagenet_lt", "adapter", B16, {"tte": True}),
    ("run_ft_methods.sh:19", "places_lt", "adapter", B16, {"tte": True}),
    ("run_ft_methods.sh:10", "imagenet_lt", "lora", B16, {"tte": True}),
    ("run_ft_methods.sh:20", "places_lt", "lora", B16, {"tte": True}),
    ("run_ft_methods.sh:11", "imagenet_lt", "adaptformer", B16, {"tte": True}),
    ("run_ft_methods.sh:21", "places_lt", "adaptformer", B16, {"tte": True}),
    ("run_zsclip.sh:9", "inat2018_kingdom", "zero_shot", B16, {}),
    ("run_zsclip.sh:10", "inat2018_phylum", "zero_shot", B16, {}),
    ("run_zsclip.sh:11", "inat2018_class", "zero_shot", B16, {}),
    ("run_zsclip.sh:12", "inat2018_order", "zero_shot", B16, {}),
    ("run_zsclip.sh:13", "inat2018_family", "zero_shot", B16, {}),
    ("run_zsclip.sh:14", "inat2018_genus", "zero_shot", B16, {}),
    ("run_zsclip.sh:15", "inat2018_species", "zero_shot", B16, {}),
    ("run_zsclip.sh:16", "inat2018", "zero_shot", B16, {}),
    ("run_bottle_dim.sh:25", "inat2018", "linear_probe", B16, {"epochs": 15, "tte": True}),
    ("run_main.sh:3", "imagenet_lt", "lift_plus", B16, {"tte": True}),
    ("run_main.sh:7", "places_lt", "lift_plus", B16, {"tte": True}),
    ("run_main.sh:11", "places_lt", "lift_plus", IN21K, {"tte": True}),
    ("run_main.sh:15", "inat2018", "lift_plus", B16, {"epochs": 15, "tte": True}),
    ("run_main.sh:19", "inat2018", "lift_plus", IN21K, {"epochs": 15, "tte": True}),
    ("run_main.sh:25", "cifar100_lt", "lift_plus", B16, {"tte": True}),
    ("run_main.sh:26", "cifar100_lt_ir50", "lift_plus", B16, {"tte": True}),
    ("run_main.sh:27", "cifar100_lt_ir10", "lift_plus", B16, {"tte": True}),
    ("run_main.sh:33", "cifar100_lt", "lift_plus", IN21K, {"tte": True}),
    ("run_main.sh:34", "cifar100_lt_ir50", "lift_plus", IN21K, {"tte": True}),
    ("run_main.sh:35", "cifar100_lt_ir10", "lift_plus", IN21K, {"tte": True}),
    ("run_backbones.sh:3", "imagenet_lt", "lift_plus", L14, {"tte": True}),
    ("run_backbones.sh:7", "places_lt", "lift_plus", L14, {"tte": True}),
    ("run_backbones.sh:11", "inat2018", "lift_plus", L14, {"epochs": 15, "tte": True}),
    ("run_backbones.sh:15", "inat2018", "lift_plus", L14_336, {"epochs": 15, "tte": True}),
    ("run_backbones.sh:18", "imagenet_lt", "ssf", RN50, {}),
    ("run_backbones.sh:22", "places_lt", "ssf", RN50, {}),
    ("run_backbones.sh:19", "imagenet_lt", "bitfit", RN50, {}),
    ("run_backbones.sh:23", "places_lt", "bitfit", RN50, {}),
]

# one row per LIFT script line
LIFT_ROWS = [
    ("run_tab6_peft_methods.sh:3", "imagenet_lt", "zero_shot", B16, {"tte": True}),
    ("run_tab6_peft_methods.sh:14", "places_lt", "zero_shot", B16, {"tte": True}),
    ("run_tab6_peft_methods.sh:4", "imagenet_lt", "linear_probe", B16, {"tte": True}),
    ("run_tab6_peft_methods.sh:15", "places_lt", "linear_probe", B16, {"tte": True}),
    ("run_tab6_peft_methods.sh:5", "imagenet_lt", "full", B16, {"lr": 0.0005, "tte": True}),
    ("run_tab6_peft_methods.sh:16", "places_lt", "full", B16, {"lr": 0.001, "tte": True}),
    ("run_tab6_peft_methods.sh:6", "imagenet_lt", "sparse", B16, {"fraction": 0.01, "tte": True}),
    ("run_tab6_peft_methods.sh:17", "places_lt", "sparse", B16, {"fraction": 0.005, "tte": True}),
    ("run_tab6_peft_methods.sh:7", "imagenet_lt", "bitfit", B16, {}),
    ("run_tab6_peft_methods.sh:18", "places_lt", "bitfit", B16, {}),
    ("run_tab6_peft_methods.sh:9", "imagenet_lt", "vpt", B16, {"depth": "deep"}),
    ("run_tab6_peft_methods.sh:20", "places_lt", "vpt", B16, {"depth": "deep"}),
    ("run_tab6_peft_methods.sh:10", "imagenet_lt", "adapter", B16, {}),
    ("run_tab6_peft_methods.sh:21", "places_lt", "adapter", B16, {}),
    ("run_tab6_peft_methods.sh:11", "imagenet_lt", "lora", B16, {}),
    ("run_tab6_peft_methods.sh:22", "places_lt", "lora", B16, {}),
    ("run_tab1to4_main_results.sh:3", "imagenet_lt", "adaptformer", B16, {"tte": True}),
    ("run_tab1to4_main_results.sh:7", "places_lt", "adaptformer", B16, {"tte": True}),
    ("run_tab1to4_main_results.sh:11", "inat2018", "adaptformer", B16, {"epochs": 20, "tte": True}),
    ("run_tab1to4_main_results.sh:17", "cifar100_lt", "adaptformer", B16, {"tte": True}),
    ("run_tab1to4_main_results.sh:18", "cifar100_lt_ir50", "adaptformer", B16, {"tte": True}),
    ("run_tab1to4_main_results.sh:19", "cifar100_lt_ir10", "adaptformer", B16, {"tte": True}),
    ("run_tab1to4_main_results.sh:22", "cifar100_lt", "adaptformer", IN21K, {}),
    ("run_tab1to4_main_results.sh:23", "cifar100_lt_ir50", "adaptformer", IN21K, {}),
    ("run_tab1to4_main_results.sh:24", "cifar100_lt_ir10", "adaptformer", IN21K, {}),
    ("run_tab17to23_backbones.sh:3", "imagenet_lt", "adaptformer", L14, {"tte": True, "expand": 21}),
    ("run_tab17to23_backbones.sh:7", "places_lt", "adaptformer", L14, {"tte": True, "expand": 21}),
    ("run_tab17to23_backbones.sh:11", "inat2018", "adaptformer", L14, {"epochs": 20, "tte": True, "expand": 21}),
    ("run_tab17to23_backbones.sh:15", "inat2018", "adaptformer", L14_336, {"epochs": 20, "tte": True, "expand": 21}),
    ("run_tab17to23_backbones.sh:18", "imagenet_lt", "ssf", RN50, {}),
    ("run_tab17to23_backbones.sh:23", "places_lt", "ssf", RN50, {}),
    ("run_tab17to23_backbones.sh:28", "imagenet_lt", "adaptformer", IN21K, {"tte": True}),
    ("run_tab17to23_backbones.sh:31", "places_lt", "adaptformer", IN21K, {"tte": True}),
    ("run_tab17to23_backbones.sh:34", "inat2018", "adaptformer", IN21K, {"epochs": 20, "tte": True}),
    ("run_fig2_zsclip.sh:9", "inat2018_kingdom", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:10", "inat2018_phylum", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:11", "inat2018_class", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:12", "inat2018_order", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:13", "inat2018_family", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:14", "inat2018_genus", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:15", "inat2018_species", "zero_shot", B16, {}),
    ("run_fig2_zsclip.sh:15", "inat2018", "zero_shot", B16, {}),  # LIFT's inat2018_s: ltbench's inat2018 too
    ("run_fig6_adapter_dim.sh:25", "inat2018", "linear_probe", B16, {"epochs": 20, "tte": True}),
    ("run_fig10_partial_ft.sh:129", "inat2018", "full", B16, {"epochs": 20, "lr": 0.005}),
]

# jobs no script line ran: they keep ltbench's defaults
NOT_RUN = [
    ("lift_plus_paper", "imagenet_lt", "partial", B16),  # run_partial.sh sweeps the lr and chooses none
    ("lift_plus_paper", "inat2018", "full", B16),  # the same sweep
    ("lift_plus_paper", "cifar100_lt", "full", B16),
    ("lift_plus_paper", "cifar100_lt", "linear_probe", B16),
    ("lift_plus_paper", "imagenet_lt", "coop", B16),
    ("lift_plus_paper", "inat2018", "coop", B16),  # keeps coop.yaml's 50 epochs
    ("lift_plus_paper", "cifar100_lt", "zero_shot", B16),
    ("lift_plus_paper", "imagenet_lt", "zero_shot", RN50),
    ("lift_plus_paper", "imagenet_lt", "linear_probe", IN21K),
    ("lift_plus_paper", "synthetic_lt", "lift_plus", B16),
    ("lift_paper", "imagenet_lt", "lift_plus", B16),
    ("lift_paper", "imagenet_lt", "partial", B16),  # run_fig10_partial_ft.sh is a sweep
    ("lift_paper", "cifar100_lt", "lora", B16),
    ("lift_paper", "imagenet_lt", "bitfit", RN50),  # LIFT's bias_tuning on a ResNet trains every bias
    ("lift_paper", "synthetic_lt", "adaptformer", B16),
]


def _planned(protocol: str, dataset: str, regime: str, backbone: tuple[str, str]):
    """The job of (data set, regime, backbone) as `run --protocol` plans it, beside a job some line of the
    protocol ran on that backbone (a paper protocol that ran none of a run's jobs is refused)."""
    model, pretrained = backbone
    lines = PROTOCOLS.get(protocol).lines
    anchor = next((line for line in lines if any(b.matches(model, pretrained) for b in line.backbones)), None)
    datasets, regimes = (dataset,), (regime,)
    if anchor is not None:
        datasets, regimes = (dataset, anchor.datasets[0]), (regime, anchor.regimes[0])
    selection = Selection(datasets=datasets, regimes=regimes, model=model, pretrained=pretrained, protocol=protocol)
    return next(job for job in plan(selection, Runtime()).jobs if (job.dataset, job.regime) == (dataset, regime))


def _expected(config: dict, epochs: int, regime: str, backbone: tuple[str, str], options: dict):
    """The regime's recipe with the code base's config defaults, its backbone config's init, then `options`;
    unset epochs the config's, and 0 for a regime that does not train."""
    recipe = REGIMES.get(regime).recipe
    values = {**config, **METHOD_CONFIG.get(regime, {})}
    if backbone == IN21K:  # configs/backbone/in21k_vit_b16.yaml, LIFT's configs/model/in21k_vit_b16.yaml
        values["classifier_init"] = "class_mean"
    recipe = dataclasses.replace(recipe, **{**values, **options})
    if not REGIMES.get(regime).trains:
        return dataclasses.replace(recipe, epochs=0)
    return recipe if recipe.epochs is not None else dataclasses.replace(recipe, epochs=epochs)


def _cites(source: str, line: str) -> bool:
    """Whether `source` names script line `file:n`, alone or in a list or range such as file:2-3,6-7."""
    file, number = line.split(":")
    for cited in re.findall(re.escape(file) + r":([0-9,\-]+)", source):
        for part in filter(None, cited.split(",")):
            low, _, high = part.partition("-")
            if int(low) <= int(number) <= int(high or low):
                return True
    return False


@pytest.mark.parametrize("protocol, rows, config, epochs", [
    ("lift_plus_paper", LIFT_PLUS_ROWS, LIFT_PLUS_CONFIG, LIFT_PLUS_EPOCHS),
    ("lift_paper", LIFT_ROWS, LIFT_CONFIG, LIFT_EPOCHS)])
def test_every_script_line_is_the_recipe_of_exactly_the_job_it_ran(protocol, rows, config, epochs):
    for line, dataset, regime, backbone, options in rows:
        job = _planned(protocol, dataset, regime, backbone)
        assert job.recipe == _expected(config, epochs, regime, backbone, options), line
        assert _cites(job.hparam_sources[PROVENANCE], line), (line, job.hparam_sources[PROVENANCE])
        for name in options:
            assert _cites(job.hparam_sources[name], line), (line, name)


@pytest.mark.parametrize("protocol, dataset, regime, backbone", NOT_RUN)
def test_a_job_no_script_line_ran_keeps_ltbenchs_defaults_and_says_so(protocol, dataset, regime, backbone):
    job = _planned(protocol, dataset, regime, backbone)
    reference = _planned("reference", dataset, regime, backbone)
    assert job.recipe == reference.recipe
    assert NOT_IN_SCRIPTS in job.hparam_sources.pop(PROVENANCE)
    assert job.hparam_sources == reference.hparam_sources


def test_no_job_is_run_by_two_lines_and_every_line_sets_fields_its_regimes_have():
    for name in ("lift_plus_paper", "lift_paper"):
        protocol = PROTOCOLS.get(name)
        for line in protocol.lines:
            for regime in line.regimes:
                assert set(line.settings) <= {f.name for f in dataclasses.fields(REGIMES.get(regime).recipe)}
                assert set(line.datasets) <= set(DATASETS.names())
                for other in protocol.lines:
                    if other is not line and regime in other.regimes:
                        assert not (set(line.datasets) & set(other.datasets) and set(line.backbones) &
                                    set(other.backbones)), (line.source, other.source)


def _jobs(*options) -> dict[tuple[str, str], object]:
    args = build_parser().parse_args(["--datasets", "imagenet_lt", "places_lt", "inat2018", "cifar100_lt",
                                      "synthetic_lt", "--regimes", "all", *options])
    return {(job.dataset, job.regime): job for job in plan(selection_of(args), Runtime()).jobs}


def test_reference_keeps_its_values_and_names_ltbenchs_own_defaults():
    jobs = _jobs()
    for (dataset, regime), job in jobs.items():
        recipe = REGIMES.get(regime).recipe
        assert (job.recipe.lr, job.recipe.tte, job.protocol) == (recipe.lr, recipe.tte, "reference")
        assert PROVENANCE not in job.hparam_sources
    assert jobs["imagenet_lt", "full"].hparam_sources == {
        "lr": "ltbench: LIFT's ImageNet-LT full fine-tuning lr (LIFT scripts/run_tab6_peft_methods.sh:5)"}
    assert jobs["cifar100_lt", "partial"].hparam_sources["lr"].startswith("ltbench: full's lr")
    assert jobs["synthetic_lt", "lift_plus"].hparam_sources["tte"].startswith("ltbench: LIFT+'s reported numbers")
    assert jobs["inat2018", "lora"].recipe.epochs == 15 and "run_main.sh:14" in jobs["inat2018", "lora"].hparam_sources[
        "epochs"]
    assert jobs["inat2018", "coop"].recipe.epochs == 50 and "epochs" not in jobs["inat2018", "coop"].hparam_sources
    assert jobs["imagenet_lt", "lora"].hparam_sources == {}  # every value LIFT-plus's default
    reference = PROTOCOLS.get("reference")
    assert "utils/config.py" not in reference.description + reference.hparam_source


def test_own_defaults_are_what_the_recipes_and_data_sets_hold():
    for default in OWN_DEFAULTS:
        for regime in default.regimes or ():
            assert getattr(REGIMES.get(regime).recipe, default.field) == default.value
        for dataset in default.datasets or ():
            assert getattr(dataset_config(dataset), default.field) == default.value
        assert default.value != default.reference and default.source.startswith("ltbench: ")
    assert "LIFT-plus: 0.02" in own_default_notes("full")["lr"] and set(own_default_notes("inat2018")) == {"epochs"}
    assert own_default_notes("lora") == {}


@pytest.mark.parametrize("backbone", [B16, IN21K])
def test_lift_plus_defaults_is_exactly_lift_plus_config(backbone):
    datasets = ["imagenet_lt", "inat2018"]
    regimes = [r for r in REGIMES.names() if backbone == B16 or not r.startswith(("coop", "clip_", "proj_", "zero"))]
    selection = Selection(datasets=tuple(datasets), regimes=tuple(regimes), model=backbone[0],
                          pretrained=backbone[1], protocol="lift_plus_defaults")
    for job in plan(selection, Runtime()).jobs:
        assert job.recipe == _expected(LIFT_PLUS_CONFIG, LIFT_PLUS_EPOCHS, job.regime, backbone, {}), job.label
        assert not any(source.startswith("ltbench") for source in job.hparam_sources.values())
    jobs = {(j.dataset, j.regime): j for j in plan(selection, Runtime()).jobs}
    assert jobs["imagenet_lt", "full"].hparam_sources["lr"] == ("protocol lift_plus_defaults: LIFT-plus "
                                                                "utils/config.py:22 (lr 0.02; configs/method/fft.yaml "
                                                                "sets none)")


def test_a_backbone_without_a_text_tower_defaults_to_class_means_and_an_explicit_semantic_init_stays():
    jobs = {j.regime: j for j in plan(Selection(datasets=("imagenet_lt",), regimes=("lora", "coop"),
                                                model="in21k_vit_b16", pretrained="none"), Runtime()).jobs}
    assert jobs["lora"].recipe.classifier_init == "class_mean"
    assert "configs/backbone/in21k_*.yaml" in jobs["lora"].hparam_sources["classifier_init"]
    assert jobs["coop"].recipe.classifier_init == "semantic"  # the text classifier: refused on its own terms
    explicit = plan(Selection(datasets=("imagenet_lt",), regimes=("lora",), model="in21k_vit_b16", pretrained="none",
                              overrides=("lora.classifier_init=semantic",)), Runtime()).jobs[0]
    assert explicit.recipe.classifier_init == "semantic" and explicit.hparam_sources["classifier_init"] == "--set"
    clip = plan(Selection(datasets=("imagenet_lt",), regimes=("lora",), model="ViT-B-16"), Runtime()).jobs[0]
    assert clip.recipe.classifier_init == "semantic"


def test_a_paper_protocol_that_ran_none_of_the_jobs_is_refused():
    with pytest.raises(OverrideError, match=r"--protocol lift_plus_paper: LIFT-plus's published scripts ran none "
                                            r"of the selected .* with ltbench-tiny \(none\).*ViT-B-16 \(openai\)"):
        plan(Selection(datasets=("imagenet_lt",), regimes=("lora",), model="ltbench-tiny", pretrained="none",
                       protocol="lift_plus_paper"), Runtime())
    with pytest.raises(OverrideError, match=r"--protocol lift_paper: .* ran none"):
        plan(Selection(datasets=("synthetic_lt",), regimes=("adaptformer",), model="ViT-B-16",
                       protocol="lift_paper"), Runtime())


def test_openai_weights_match_under_either_activation_name_and_other_weights_do_not():
    b16 = Weights(("ViT-B-16", "ViT-B-16-quickgelu"), ("openai",))
    assert b16.matches("ViT-B-16", "openai") and b16.matches("ViT-B-16-quickgelu", "openai")
    assert not b16.matches("ViT-B-16", "laion2b_s34b_b88k") and not b16.matches("ViT-B-32", "openai")
    quick = _planned("lift_plus_paper", "imagenet_lt", "full", ("ViT-B-16-quickgelu", "openai"))
    assert quick.recipe.lr == 0.001
    for tag in ("openai", "default", "augreg2_in21k_ft_in1k"):
        assert _planned("lift_paper", "cifar100_lt", "adaptformer", ("in21k_vit_b16", tag)).recipe.epochs == 10
    for other in (("in21k_vit_b16", "none"), ("ViT-B-16", "laion2b_s34b_b88k")):  # other weights: no line ran them
        with pytest.raises(OverrideError, match=f"ran none of the selected .* with {other[0]} \\({other[1]}\\)"):
            _planned("lift_paper", "cifar100_lt", "adaptformer", other)


def test_lift_resizes_bilinear_and_lift_plus_bicubic():
    lift = _planned("lift_paper", "imagenet_lt", "adaptformer", B16)
    assert (lift.recipe.interpolation, lift.recipe.augmentation) == ("bilinear", "rrc_flip_bilinear")
    assert "trainer.py:110,119,143" in lift.hparam_sources["interpolation"]
    assert _planned("lift_plus_paper", "imagenet_lt", "adaptformer", B16).recipe.interpolation == "bicubic"
    assert _planned("lift_paper", "imagenet_lt", "zero_shot", B16).recipe.interpolation == "bilinear"


def test_command_line_settings_win_over_the_protocol_and_say_so():
    jobs = _jobs("--protocol", "lift_plus_paper", "--set", "full.lr=0.004", "--epochs", "3")
    assert jobs["imagenet_lt", "full"].recipe.lr == 0.004
    assert jobs["imagenet_lt", "full"].hparam_sources["lr"] == "--set"
    assert jobs["imagenet_lt", "full"].recipe.epochs == 3
    assert jobs["imagenet_lt", "full"].hparam_sources["epochs"] == "--epochs"


def test_protocol_is_part_of_the_job_identity():
    reference = _jobs()["imagenet_lt", "lora"]
    paper = _jobs("--protocol", "lift_plus_paper", "--set", "lora.tte=false")["imagenet_lt", "lora"]
    assert reference.recipe == paper.recipe and reference.job_id != paper.job_id


def test_every_protocol_is_a_choice_of_the_command_line():
    assert set(PROTOCOLS.names()) == {"reference", "lift_plus_defaults", "lift_plus_paper", "lift_paper"}
    args = build_parser().parse_args(["--datasets", "imagenet_lt", "--protocol", "lift_plus_defaults"])
    assert selection_of(args).protocol == "lift_plus_defaults"
