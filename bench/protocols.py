"""Protocols: which hyper-parameters a run uses, and where each one comes from.

`reference` runs the regimes' recipes: LIFT-plus's config defaults (utils/config.py, configs/method/*.yaml,
configs/backbone/*.yaml) except for the few values ltbench chose itself, `OWN_DEFAULTS`, each with its source;
`lift_plus_defaults` puts LIFT-plus's own values back. The paper protocols are tables of the authors' script
lines (LIFT-plus at ea555ea, LIFT at 661ead9): each `Rule` is one line, or lines identical but for the data set,
and applies exactly to the (data set, regime, backbone) those lines ran, on top of that code base's config
defaults; a job that no line ran keeps ltbench's defaults, and its record says "not in the papers' scripts".
Every job records, per hyper-parameter that is not LIFT-plus's config default, where its value comes from
(`hparam_sources`), and under a paper protocol which line its recipe is (`PROVENANCE`). The references have no
validation split, so their authors chose these values on the test set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.models.timm_towers import IMAGENET_MODELS, REFERENCE_ALIASES, is_timm_model
from bench.registry import Registry

TEST_SET_CHOICE = "the references' authors chose these values on the test set (their code has no validation split)"
PROVENANCE = "protocol"  # the hparam_sources entry naming the script line a paper protocol's recipe is, or none
NOT_IN_SCRIPTS = "not in the papers' scripts"


@dataclass(frozen=True)
class Weights:
    """A backbone of the references in ltbench's names: an open_clip model (or its -quickgelu twin) or one of the
    reference's ImageNet models, with the weights tags that load the reference's weights."""

    models: tuple[str, ...]
    tags: tuple[str, ...]

    def matches(self, model: str, pretrained: str) -> bool:
        return model in self.models and (pretrained or "").strip() in self.tags

    def __str__(self) -> str:
        return f"{self.models[0]} ({self.tags[0]})"


def openai(model: str) -> Weights:
    """OpenAI's CLIP weights of `model` (LIFT-plus and LIFT load them with clip.load)."""
    return Weights((model, f"{model}-quickgelu"), ("openai",))


def imagenet(name: str) -> Weights:
    """The reference's ImageNet backbone `name` with its timm weights (bench.models.timm_towers)."""
    return Weights((name,), (IMAGENET_MODELS[name].tag, *REFERENCE_ALIASES))


# the references' -b / -m backbones: clip_vit_b16, clip_vit_l14, clip_vit_l14@336px, clip_rn50, in21k_vit_b16
CLIP_B16, CLIP_L14, CLIP_L14_336, CLIP_RN50 = (openai(m) for m in ("ViT-B-16", "ViT-L-14", "ViT-L-14-336", "RN50"))
IN21K_B16 = imagenet("in21k_vit_b16")

# the references' -d data sets: cifar100_ir100/50/10; inat2018 (species: ltbench's inat2018 and inat2018_species);
# inat2018_k, _p, _c, _o, _f, _g, _s
IMAGENET, PLACES = ("imagenet_lt",), ("places_lt",)
IMAGENET_PLACES = IMAGENET + PLACES
CIFAR = ("cifar100_lt", "cifar100_lt_ir50", "cifar100_lt_ir10")
INAT = ("inat2018", "inat2018_species")
INAT_ALL_LEVELS = INAT + tuple(f"inat2018_{level}" for level in
                               ("kingdom", "phylum", "class", "order", "family", "genus"))


@dataclass(frozen=True)
class Rule:
    """What `source` ran (a script line or identical lines, or a config file): `settings` (recipe field -> value)
    on exactly these regimes, data sets and backbones (None: any)."""

    source: str
    settings: dict[str, Any]
    regimes: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    backbones: tuple[Weights, ...] | None = None

    def matches(self, dataset: str, regime: str, model: str, pretrained: str) -> bool:
        return ((self.regimes is None or regime in self.regimes) and
                (self.datasets is None or dataset in self.datasets) and
                (self.backbones is None or any(b.matches(model, pretrained) for b in self.backbones)))


@dataclass(frozen=True)
class OwnDefault:
    """A default of ltbench's that is not LIFT-plus's config default: ltbench's value and why, LIFT-plus's value
    and where it says so, for these regimes and data sets (None: any)."""

    field: str
    value: Any
    source: str
    reference: Any
    reference_source: str
    regimes: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None

    def applies(self, dataset: str, regime: str) -> bool:
        return (self.regimes is None or regime in self.regimes) and (self.datasets is None or dataset in self.datasets)


PLUS = "LIFT-plus "  # at ea555ea
LIFT = "LIFT "  # at 661ead9

OWN_DEFAULTS = (
    OwnDefault("lr", 5e-4, "ltbench: LIFT's ImageNet-LT full fine-tuning lr (LIFT scripts/run_tab6_peft_methods.sh:5)",
               0.02, PLUS + "utils/config.py:22 (lr 0.02; configs/method/fft.yaml sets none)", regimes=("full",)),
    OwnDefault("lr", 5e-4, "ltbench: full's lr, so that a sweep over partial.blocks changes only how much trains "
               "(LIFT-plus scripts/run_partial.sh sweeps the lr per block count and chooses none)",
               0.02, PLUS + "utils/config.py:22 (lr 0.02)", regimes=("partial",)),
    OwnDefault("tte", True, "ltbench: LIFT+'s reported numbers are 5-crop TTE (LIFT-plus scripts/run_main.sh tests "
               "every lift+ run with test_only True tte True)",
               False, PLUS + "utils/config.py:29 (tte False; configs/method/lift+.yaml sets none)",
               regimes=("lift_plus",)),
    OwnDefault("epochs", 15, "ltbench: the epochs LIFT-plus's scripts train LIFT+ for on iNaturalist 2018 "
               "(scripts/run_main.sh:14 num_epochs 15)",
               5, PLUS + "utils/config.py:19 (num_epochs 5)", datasets=INAT_ALL_LEVELS),
)

NO_TEXT_TOWER_INIT = ("reference: " + PLUS + "configs/backbone/in21k_*.yaml:5, in1k_*.yaml:5 (classifier_init "
                      "class_mean: the backbone has no text tower for the semantic init)")


def backbone_defaults(recipe, model: str) -> dict[str, Any]:
    """The reference's per-backbone default: a backbone without a text tower (the ImageNet and timm/ models,
    built through timm) starts its classifier from class means, as LIFT-plus's backbone configs say."""
    if is_timm_model(model) and recipe.classifier != "text" and recipe.classifier_init == "semantic":
        return {"classifier_init": "class_mean"}
    return {}


def own_default_sources(dataset: str, regime: str, default, resolved, sources: dict[str, str]) -> dict[str, str]:
    """{field: why} for the fields of the `resolved` recipe that hold one of ltbench's OWN_DEFAULTS with nothing
    in `sources` having set them; `default` is the regime's recipe (epochs: only where it leaves them to the data
    set)."""
    return {d.field: d.source for d in OWN_DEFAULTS if d.applies(dataset, regime) and d.field not in sources
            and getattr(resolved, d.field, None) == d.value and (d.field != "epochs" or default.epochs is None)}


def own_default_notes(scope: str) -> dict[str, str]:
    """{field: note} for the list command: the settings of regime or data set `scope` whose default is ltbench's
    own, each with its source and LIFT-plus's value."""
    return {d.field: f"{d.source}; LIFT-plus: {d.reference}" for d in OWN_DEFAULTS
            if scope in (d.regimes or ()) + (d.datasets or ())}


@dataclass(frozen=True)
class Protocol:
    """`config`: the code base's config defaults; `lines`: its authors' script lines. Without lines the config
    applies to every job; with lines, config and line apply only to a job a line ran, the line winning."""

    name: str
    description: str
    hparam_source: str  # which split chose the values, for the report
    config: tuple[Rule, ...] = ()
    lines: tuple[Rule, ...] = ()
    scripts: str = ""  # whose scripts the lines are, for messages

    def line(self, dataset: str, regime: str, model: str, pretrained: str) -> Rule | None:
        """The script line that ran (data set, regime, backbone), or None."""
        return next((rule for rule in self.lines if rule.matches(dataset, regime, model, pretrained)), None)

    def rules(self, dataset: str, regime: str, model: str, pretrained: str) -> tuple[Rule, ...]:
        """The rules that apply, in order (later ones win): the config's, then the line's; none for a job that no
        line of a paper protocol ran."""
        line = self.line(dataset, regime, model, pretrained)
        if self.lines and line is None:
            return ()
        config = tuple(rule for rule in self.config if rule.matches(dataset, regime, model, pretrained))
        return config + ((line,) if line else ())

    def apply(self, dataset: str, regime: str, recipe, trains: bool, model: str, pretrained: str
              ) -> tuple[Any, dict[str, str]]:
        """The recipe with the backbone's reference default and this protocol's values, and {field: source} for
        the fields they set. A regime that does not train keeps its epochs (0); a config's epochs do not replace
        a method's own (coop.yaml's 50), only the data set's default."""
        changes = backbone_defaults(recipe, model)
        sources = dict.fromkeys(changes, NO_TEXT_TOWER_INIT)
        for rule in self.rules(dataset, regime, model, pretrained):
            for name, value in rule.settings.items():
                if name == "epochs" and (not trains or (rule in self.config and recipe.epochs is not None)):
                    continue
                changes[name] = value
                sources[name] = f"protocol {self.name}: {rule.source}"
        return (dataclasses.replace(recipe, **changes) if changes else recipe), sources

    def provenance(self, dataset: str, regime: str, model: str, pretrained: str) -> dict[str, str]:
        """{PROVENANCE: the script line the job's recipe is, or that none ran it} under a paper protocol; {}
        otherwise."""
        if not self.lines:
            return {}
        line = self.line(dataset, regime, model, pretrained)
        if line is not None:
            return {PROVENANCE: f"{self.name}: {line.source}"}
        return {PROVENANCE: f"{self.name}: {NOT_IN_SCRIPTS} (no line of {self.scripts} ran {regime} on {dataset} "
                            f"with {model} ({pretrained})): ltbench's defaults"}

    def uncovered(self, model: str, pretrained: str) -> str:
        """Why a run none of whose jobs a line ran is refused, and what the lines do cover."""
        backbones = ", ".join(dict.fromkeys(str(b) for rule in self.lines for b in rule.backbones or ()))
        datasets = ", ".join(dict.fromkeys(d for rule in self.lines for d in rule.datasets or ()))
        return (f"--protocol {self.name}: {self.scripts} ran none of the selected regimes and data sets with "
                f"{model} ({pretrained}), so it would change nothing; they ran {backbones} on {datasets}: select "
                f"one of those, or use --protocol reference")


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(protocol: Protocol) -> Protocol:
    return PROTOCOLS.register(protocol.name)(protocol)


# LIFT-plus's config defaults where ltbench's differ (utils/config.py; configs/method/coop.yaml keeps its epochs)
LIFT_PLUS_CONFIG = tuple(Rule(d.reference_source, {d.field: d.reference}, d.regimes, d.datasets)
                         for d in OWN_DEFAULTS)

# LIFT-plus scripts/: one rule per line, or lines identical but for -d; `-m lp` alone is linear_probe, with
# v.bitfit / v.pt / v.adapter / v.lora / v.adaptformer True bitfit / vpt / adapter / lora / adaptformer, `-m fft
# v.fft_layers 12` full, `-m aft` sparse, `-m lift+` lift_plus, `-m zs` zero_shot. The ablation scripts' points at
# the default setting agree with these; their other points are grids, and run_partial.sh and run_aft_ratio.sh are
# sweeps that choose no value.
PLUS_SCRIPTS = PLUS + "scripts/"
TTE = {"tte": True}
LIFT_PLUS_LINES = (
    # the comparison of fine-tuning methods on ViT-B/16, every one tested with TTE
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:3,13 (zs tte True; run_zsclip.sh:3,6 ran it without TTE)", TTE,
         ("zero_shot",), IMAGENET_PLACES, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:4,14 (lp lr 0.03 tte True; run_zsclip.sh:4,7 ran lr 0.03 without "
         "TTE, run_bottle_dim.sh:3,14 lr 0.02 with TTE)", {"lr": 0.03, **TTE}, ("linear_probe",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:5 (fft v.fft_layers 12 lr 0.001 tte True)", {"lr": 1e-3, **TTE},
         ("full",), IMAGENET, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:15 (fft v.fft_layers 12 lr 0.002 tte True)", {"lr": 2e-3, **TTE},
         ("full",), PLACES, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:6,16 (aft v.aft_ratio 0.005 lr 0.02 tte True)",
         {"fraction": 0.005, "lr": 0.02, **TTE}, ("sparse",), IMAGENET_PLACES, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:7,17 (lp v.bitfit True tte True)", TTE, ("bitfit",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:8,18 (lp v.pt True tte True)", TTE, ("vpt",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:9,19 (lp v.adapter True tte True)", TTE, ("adapter",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:10,20 (lp v.lora True tte True)", TTE, ("lora",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_ft_methods.sh:11,21 (lp v.adaptformer True tte True)", TTE, ("adaptformer",),
         IMAGENET_PLACES, (CLIP_B16,)),
    # zero-shot CLIP at each iNaturalist level, without TTE; the classifier alone on iNaturalist
    Rule(PLUS_SCRIPTS + "run_zsclip.sh:9-16 (zs)", {}, ("zero_shot",), INAT_ALL_LEVELS, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_bottle_dim.sh:25 (lift+ num_epochs 15 v.adaptformer False tte True)",
         {"epochs": 15, **TTE}, ("linear_probe",), INAT, (CLIP_B16,)),
    # LIFT+ trained, then tested with `test_only True tte True`: the reported number
    Rule(PLUS_SCRIPTS + "run_main.sh:2-3,6-7 (lift+, then test_only True tte True)", TTE, ("lift_plus",),
         IMAGENET_PLACES, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_main.sh:10-11 (lift+, then test_only True tte True)", TTE, ("lift_plus",), PLACES,
         (IN21K_B16,)),
    Rule(PLUS_SCRIPTS + "run_main.sh:14-15 (lift+ num_epochs 15, then test_only True tte True)",
         {"epochs": 15, **TTE}, ("lift_plus",), INAT, (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_main.sh:18-19 (lift+ num_epochs 15, then test_only True tte True)",
         {"epochs": 15, **TTE}, ("lift_plus",), INAT, (IN21K_B16,)),
    Rule(PLUS_SCRIPTS + "run_main.sh:22-27 (lift+, then test_only True tte True)", TTE, ("lift_plus",), CIFAR,
         (CLIP_B16,)),
    Rule(PLUS_SCRIPTS + "run_main.sh:30-35 (lift+, then test_only True tte True)", TTE, ("lift_plus",), CIFAR,
         (IN21K_B16,)),
    Rule(PLUS_SCRIPTS + "run_backbones.sh:2-3,6-7 (lift+ accum_step 4, then test_only True tte True)", TTE,
         ("lift_plus",), IMAGENET_PLACES, (CLIP_L14,)),
    Rule(PLUS_SCRIPTS + "run_backbones.sh:10-11 (lift+ num_epochs 15 accum_step 4, then test_only True tte True)",
         {"epochs": 15, **TTE}, ("lift_plus",), INAT, (CLIP_L14,)),
    Rule(PLUS_SCRIPTS + "run_backbones.sh:14-15 (lift+ num_epochs 15 accum_step 8, then test_only True tte True)",
         {"epochs": 15, **TTE}, ("lift_plus",), INAT, (CLIP_L14_336,)),
    # ResNet-50: no TTE
    Rule(PLUS_SCRIPTS + "run_backbones.sh:18,22 (lp v.ssf True)", {}, ("ssf",), IMAGENET_PLACES, (CLIP_RN50,)),
    Rule(PLUS_SCRIPTS + "run_backbones.sh:19,23 (lp v.bitfit True)", {}, ("bitfit",), IMAGENET_PLACES,
         (CLIP_RN50,)),
)

# LIFT's config defaults (configs/model/*.yaml and utils/config.py) where they differ from LIFT-plus's; its
# backbone configs' init_head (text_feat; class_mean for in21k_*) is LIFT-plus's classifier_init
LIFT_CONFIG = (
    Rule(LIFT + "configs/model/*.yaml:13 (num_epochs 10)", {"epochs": 10}),
    Rule(LIFT + "configs/model/*.yaml:16 (lr 0.01)", {"lr": 0.01}),
    Rule(LIFT + "trainer.py:102-107 (RandomResizedCrop, torchvision's default bilinear, + RandomHorizontalFlip)",
         {"augmentation": "rrc_flip_bilinear"}),
    Rule(LIFT + "trainer.py:110,119,143 (Resize with torchvision's default bilinear: classifier-init, TTE and test "
         "images)", {"interpolation": "bilinear"}),
)

# LIFT scripts/: `-m clip_vit_b16` alone is linear_probe (the head trains), `-m zsclip_vit_b16` zero_shot,
# full_tuning full, mask sparse, bias_tuning bitfit, vpt_deep vpt, adapter, lora, adaptformer (LIFT itself),
# ssf_attn on a ResNet ssf. Not rules: run_fig10_partial_ft.sh and run_fig4_ft_ratio.sh are sweeps, and
# run_tab17to23_backbones.sh:19-20,24-25 tune every bias of the ResNet (ltbench's bitfit: its blocks' BatchNorms).
LIFT_SCRIPTS = LIFT + "scripts/"
L14_EXPAND = {**TTE, "expand": 21}  # configs/model/clip_vit_l14*.yaml:24 (expand 21)
LIFT_LINES = (
    # Table 6, fine-tuning methods on ViT-B/16: TTE for its first four rows only
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:3,14 (zsclip_vit_b16 tte True; run_fig2_zsclip.sh:3,6 ran it "
         "without TTE)", TTE, ("zero_shot",), IMAGENET_PLACES, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:4,15 (clip_vit_b16 tte True, at the config's lr 0.01; "
         "run_fig2_zsclip.sh:4,7 and run_tab8_training_acc.sh:3,9 ran lr 0.02 without TTE)", TTE, ("linear_probe",),
         IMAGENET_PLACES, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:5 (full_tuning True lr 0.0005 tte True)", {"lr": 5e-4, **TTE},
         ("full",), IMAGENET, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:16 (full_tuning True lr 0.001 tte True)", {"lr": 1e-3, **TTE},
         ("full",), PLACES, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:6 (mask True mask_ratio 0.01 tte True)",
         {"fraction": 0.01, **TTE}, ("sparse",), IMAGENET, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:17 (mask True mask_ratio 0.005 tte True)",
         {"fraction": 0.005, **TTE}, ("sparse",), PLACES, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:7,18 (bias_tuning True)", {}, ("bitfit",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:9,20 (vpt_deep True; :8,19 vpt_shallow True is "
         "vpt.depth=shallow)", {"depth": "deep"}, ("vpt",), IMAGENET_PLACES, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:10,21 (adapter True)", {}, ("adapter",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab6_peft_methods.sh:11,22 (lora True)", {}, ("lora",), IMAGENET_PLACES, (CLIP_B16,)),
    # LIFT itself (Tables 1-4), trained, then tested with `test_only True tte True`
    Rule(LIFT_SCRIPTS + "run_tab1to4_main_results.sh:2-3,6-7 (adaptformer True, then test_only True tte True; "
         "run_tab6_peft_methods.sh:12,23 ran it without TTE for Table 6)", TTE, ("adaptformer",), IMAGENET_PLACES,
         (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab1to4_main_results.sh:10-11 (adaptformer True num_epochs 20, then test_only True "
         "tte True)", {"epochs": 20, **TTE}, ("adaptformer",), INAT, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab1to4_main_results.sh:14-19 (adaptformer True, then test_only True tte True)", TTE,
         ("adaptformer",), CIFAR, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab1to4_main_results.sh:22-24 (in21k_vit_b16 adaptformer True, no TTE)", {},
         ("adaptformer",), CIFAR, (IN21K_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:2-3,6-7 (clip_vit_l14 adaptformer True, then test_only True "
         "tte True; configs/model/clip_vit_l14.yaml:24 expand 21)", L14_EXPAND, ("adaptformer",), IMAGENET_PLACES,
         (CLIP_L14,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:10-11 (clip_vit_l14 adaptformer True num_epochs 20, then "
         "test_only True tte True; configs/model/clip_vit_l14.yaml:24 expand 21)", {"epochs": 20, **L14_EXPAND},
         ("adaptformer",), INAT, (CLIP_L14,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:14-15 (clip_vit_l14@336px adaptformer True num_epochs 20, then "
         "test_only True tte True; configs/model/clip_vit_l14@336px.yaml:24 expand 21)",
         {"epochs": 20, **L14_EXPAND}, ("adaptformer",), INAT, (CLIP_L14_336,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:18,23 (clip_rn50 ssf_attn True: a scale-shift on the attention "
         "pool's output)", {}, ("ssf",), IMAGENET_PLACES, (CLIP_RN50,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:28,31 (in21k_vit_b16 adaptformer True tte True)", TTE,
         ("adaptformer",), IMAGENET_PLACES, (IN21K_B16,)),
    Rule(LIFT_SCRIPTS + "run_tab17to23_backbones.sh:34 (in21k_vit_b16 adaptformer True num_epochs 20 tte True)",
         {"epochs": 20, **TTE}, ("adaptformer",), INAT, (IN21K_B16,)),
    # zero-shot CLIP at each iNaturalist level; the classifier alone and full fine-tuning on iNaturalist
    Rule(LIFT_SCRIPTS + "run_fig2_zsclip.sh:9-15 (zsclip_vit_b16; inat2018_s is the species level)", {},
         ("zero_shot",), INAT_ALL_LEVELS, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_fig6_adapter_dim.sh:25 (clip_vit_b16 num_epochs 20 tte True; "
         "run_tab8_training_acc.sh:15 ran the same lr 0.01 without TTE)", {"epochs": 20, **TTE}, ("linear_probe",),
         INAT, (CLIP_B16,)),
    Rule(LIFT_SCRIPTS + "run_fig10_partial_ft.sh:129 (full_tuning True num_epochs 20 partial 12 lr 0.005, the lr "
         "run_tab8_training_acc.sh:17 names 'best lr for full fine-tuning'; no TTE)", {"epochs": 20, "lr": 5e-3},
         ("full",), INAT, (CLIP_B16,)),
)

REFERENCE = register_protocol(Protocol(
    "reference", "ltbench's defaults, the regimes' recipes: LIFT-plus's config defaults except where ltbench chose "
    "its own value, which then names its source", f"ltbench's defaults (LIFT-plus's config, a few values ltbench's "
    f"own, each named); {TEST_SET_CHOICE}"))

register_protocol(Protocol(
    "lift_plus_defaults", "exactly LIFT-plus's config defaults (utils/config.py, configs/method/*.yaml, "
    "configs/backbone/*.yaml): the reference's values where ltbench chose its own",
    f"LIFT-plus's config defaults; {TEST_SET_CHOICE}", LIFT_PLUS_CONFIG))

register_protocol(Protocol(
    "lift_plus_paper", "what LIFT-plus's published scripts ran, line by line, on exactly the data sets, regimes and "
    "backbones each line ran (over LIFT-plus's config defaults); other jobs keep ltbench's defaults",
    f"LIFT-plus's published scripts; {TEST_SET_CHOICE}", LIFT_PLUS_CONFIG, LIFT_PLUS_LINES,
    "LIFT-plus's published scripts"))

register_protocol(Protocol(
    "lift_paper", "what the LIFT repository's scripts ran (the earlier paper), line by line, on exactly the data "
    "sets, regimes and backbones each line ran, over LIFT's config (10 epochs, lr 0.01, bilinear "
    "RandomResizedCrop + flip and resizes); other jobs keep ltbench's defaults",
    f"the LIFT repository's published scripts; {TEST_SET_CHOICE}", LIFT_CONFIG, LIFT_LINES,
    "the LIFT repository's scripts"))
