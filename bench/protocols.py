"""Protocols: which hyper-parameters a run uses, and where each one comes from.

`reference` is the reference code's defaults (LIFT-plus `utils/config.py` and method configs), as the
regimes' recipes define them. The paper protocols apply what the authors' published scripts ran on top of
those defaults (LIFT-plus at ea555ea, LIFT at 661ead9; file:line in each source). Every job records, per
hyper-parameter, its source, so the report can say which split chose it: the references have no validation
split, so their values were chosen on the test set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry

DEFAULTS_SOURCE = "ltbench default = LIFT-plus utils/config.py and configs/method/*.yaml"
TEST_SET_CHOICE = "the references' authors chose these values on the test set (their code has no validation split)"


@dataclass(frozen=True)
class Rule:
    """Set `field` to `value` for the given regimes (None: all that have the field, less `exclude`) on the given
    data sets (name prefixes; None: all). A regime that does not train keeps its epochs (0)."""

    field: str
    value: Any
    source: str
    regimes: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def applies(self, dataset: str, regime: str, recipe, trains: bool) -> bool:
        return (self.regimes is None or regime in self.regimes) and regime not in self.exclude and \
            (self.datasets is None or dataset.startswith(self.datasets)) and hasattr(recipe, self.field) and \
            (trains or self.field != "epochs")


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    hparam_source: str  # which split chose the values, for the report
    rules: tuple[Rule, ...] = ()

    def apply(self, dataset: str, regime: str, recipe, trains: bool = True) -> tuple[Any, dict[str, str]]:
        """The recipe with this protocol's values, and {field: source} for the fields it set. Later rules win."""
        changes, sources = {}, {}
        for rule in self.rules:
            if rule.applies(dataset, regime, recipe, trains):
                changes[rule.field] = rule.value
                sources[rule.field] = f"protocol {self.name}: {rule.source}"
        return (dataclasses.replace(recipe, **changes) if changes else recipe), sources


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(protocol: Protocol) -> Protocol:
    return PROTOCOLS.register(protocol.name)(protocol)


FINE_TUNING = ("full", "partial")
PLUS = "LIFT-plus "  # at ea555ea
LIFT = "LIFT "  # at 661ead9

REFERENCE = register_protocol(Protocol(
    "reference", "the reference code's defaults (LIFT-plus utils/config.py): what the regimes' recipes say",
    f"reference defaults; {TEST_SET_CHOICE}"))

register_protocol(Protocol(
    "lift_plus_paper", "what LIFT-plus's published scripts ran for its tables: 5-crop TTE for every regime, "
    "the per-data-set learning rates of full/partial fine-tuning, lr 0.03 for the classifier alone, sparse "
    "ratio 0.005", f"LIFT-plus's published scripts; {TEST_SET_CHOICE}", (
        Rule("tte", True, PLUS + "scripts/run_ft_methods.sh:3-21 and run_main.sh (every reported number adds tte True)"),
        Rule("lr", 0.03, PLUS + "scripts/run_ft_methods.sh:4,14 ('best lr for classifier fine-tuning')",
             regimes=("linear_probe",)),
        Rule("lr", 1e-3, PLUS + "scripts/run_ft_methods.sh:5 (fft_layers 12 lr 0.001)", regimes=FINE_TUNING,
             datasets=("imagenet_lt",)),
        Rule("lr", 2e-3, PLUS + "scripts/run_ft_methods.sh:15 (fft_layers 12 lr 0.002)", regimes=FINE_TUNING,
             datasets=("places_lt",)),
        Rule("fraction", 0.005, PLUS + "scripts/run_ft_methods.sh:6,16 (aft_ratio 0.005)", regimes=("sparse",)),
        Rule("lr", 0.02, PLUS + "scripts/run_ft_methods.sh:6,16 (aft lr 0.02)", regimes=("sparse",)),
        Rule("epochs", 15, PLUS + "scripts/run_main.sh:14 (num_epochs 15)", datasets=("inat2018",)),
    )))

register_protocol(Protocol(
    "lift_paper", "what the LIFT repository's scripts ran (the earlier paper): 10 epochs (iNaturalist 20), "
    "lr 0.01, RandomResizedCrop + horizontal flip, its per-data-set lrs of full fine-tuning and the classifier, "
    "and TTE where its tables used it", f"the LIFT repository's published scripts; {TEST_SET_CHOICE}", (
        Rule("epochs", 10, LIFT + "configs/model/clip_vit_b16.yaml:11-24 (num_epochs 10)"),
        Rule("epochs", 20, LIFT + "scripts/run_tab1to4_main_results.sh:10 (num_epochs 20)", datasets=("inat2018",)),
        Rule("lr", 0.01, LIFT + "configs/model/clip_vit_b16.yaml:11-24 (lr 0.01)", exclude=FINE_TUNING),
        Rule("augmentation", "rrc_flip_bilinear",
             LIFT + "trainer.py:102-107 (RandomResizedCrop, torchvision's default bilinear, + RandomHorizontalFlip)"),
        Rule("lr", 5e-4, LIFT + "scripts/run_tab6_peft_methods.sh:5", regimes=FINE_TUNING, datasets=("imagenet_lt",)),
        Rule("lr", 1e-3, LIFT + "scripts/run_tab6_peft_methods.sh:16", regimes=FINE_TUNING, datasets=("places_lt",)),
        Rule("lr", 5e-3, LIFT + "scripts/run_tab8_training_acc.sh:17", regimes=FINE_TUNING, datasets=("inat2018",)),
        Rule("lr", 0.02, LIFT + "scripts/run_fig2_zsclip.sh:4,7", regimes=("linear_probe",),
             datasets=("imagenet_lt", "places_lt")),
        Rule("lr", 0.01, LIFT + "scripts/run_tab8_training_acc.sh:15", regimes=("linear_probe",), datasets=("inat2018",)),
        Rule("fraction", 0.01, LIFT + "scripts/run_tab6_peft_methods.sh:6 (mask_ratio 0.01)", regimes=("sparse",),
             datasets=("imagenet_lt",)),
        Rule("fraction", 0.005, LIFT + "scripts/run_tab6_peft_methods.sh:17 (mask_ratio 0.005)", regimes=("sparse",),
             datasets=("places_lt",)),
        Rule("tte", True, LIFT + "scripts/run_tab6_peft_methods.sh and scripts/run_tab1to4_main_results.sh (tte True for "
             "zero-shot, classifier, full, mask and AdaptFormer; not for the other PEFT rows)",
             regimes=("zero_shot", "linear_probe", "full", "sparse", "adaptformer", "lift_plus")),
    )))
