"""Regime interface and registry: a regime is a default recipe plus the set of tensors it trains."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional, Sequence, Union

from torch import nn

from bench.data import LongTailData
from bench.fields import MAX_SIZE, setting
from bench.models import Backbone, LongTailModel, make_classifier
from bench.models.heads import TextClassifier
from bench.models.backbone import needs_text_tower
from bench.models.towers import has_text_tower, is_resnet, tower_blocks
from bench.models.tunable_block import tunable_blocks, unsupported_block
from bench.registry import REGIMES
from bench.training.recipe import Recipe


def bottleneck_size(num_classes: int, num_layers: int, divisor: int = 1) -> int:
    """The references' automatic size 2^max(0, floor(log2(K / (layers · divisor)))) (a recipe policy: LoRA rank,
    adapter bottleneck, VPT length)."""
    return 2 ** max(0, math.floor(math.log2(num_classes / (num_layers * divisor))))


def num_blocks(visual: nn.Module) -> int:
    return len(tower_blocks(visual))


def selected_blocks(layers: Union[int, Sequence[int], None], num_blocks: int, name: str = "layers") -> list[int]:
    """LIFT-plus's layer choice (`*_layers`): None all blocks, an int k the last k (0: none), else the listed
    block indices (sorted). Unlike the reference, k > L, negative and repeated indices are refused (ValueError
    naming the setting `name`) instead of wrapping around or tuning a block twice."""
    if layers is None:
        return list(range(num_blocks))
    if isinstance(layers, int):
        if not 0 <= layers <= num_blocks:
            raise ValueError(f"{name}={layers} but the model has {num_blocks} blocks; use --set {name}=0..{num_blocks}")
        return list(range(num_blocks - layers, num_blocks))
    outside = [i for i in layers if not 0 <= i < num_blocks]
    if outside:
        raise ValueError(f"{name} lists block {outside[0]} but the model has blocks 0..{num_blocks - 1}; "
                         f"list indices in 0..{num_blocks - 1}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{name} lists a block twice ({', '.join(map(str, layers))}); list each block once")
    return sorted(layers)


@dataclass(frozen=True)
class TowerRecipe(Recipe):
    """A recipe for a regime acting on transformer blocks: of which tower."""

    tower: Literal["image", "text"] = setting(
        "image", help="the tower whose blocks the method tunes; text (LIFT-plus's l.*) needs classifier=text, and "
                      "its automatic sizes are LIFT-plus's l.* defaults")


@dataclass(frozen=True)
class LayersRecipe(TowerRecipe):
    """A recipe for a regime acting on transformer blocks: which of them it tunes."""

    layers: Optional[Union[int, tuple[int, ...]]] = setting(
        None, low=0, high=MAX_SIZE, help="the blocks tuned: None all, k the last k (0 none), or block indices "
                                         "such as 0,3,5 (automatic sizes count the chosen blocks)")

    def __post_init__(self):
        if isinstance(self.layers, list):  # hashable, as every recipe must be
            object.__setattr__(self, "layers", tuple(self.layers))
        super().__post_init__()


def register_regime(name: str):
    """Class decorator: register a Regime subclass under `name` (its `name` attribute is set too)."""

    def decorator(cls: type["Regime"]) -> type["Regime"]:
        cls.name = name
        return REGIMES.register(name)(cls)

    return decorator


class Regime:
    """Subclasses set `recipe` (defaults, a Recipe subclass when the regime has options of its own) and
    override `adapt` (which tensors train, which modules are attached at which `TunableBlock` sites) or
    `make_head`, and `resolve` when the recipe has automatic (None) sizes.

    `build` resolves the recipe, freezes everything but the head, then lets `adapt` switch on or inject exactly
    the regime's tensors, so the engine only ever trains the parameters whose `requires_grad` is true.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    recipe: ClassVar[Recipe] = Recipe()
    trains: ClassVar[bool] = True
    lightweight: ClassVar[bool] = True  # a parameter-efficient method (the papers' "light"; not full, partial, probes)
    runs_on_resnet: ClassVar[bool] = False  # what LIFT-plus implements for ResNets: full, bitfit, ssf, the heads
    text_side: ClassVar[str] = ""  # what a regime that works through the text-encoder classifier tunes there

    def make_head(self, backbone: Backbone, data: LongTailData, recipe: Recipe) -> nn.Module:
        return make_classifier(recipe.classifier, recipe.classifier_init, backbone, data.num_classes,
                               recipe.classifier_scale)

    def uses_text_tower(self, recipe: Recipe) -> bool:
        """Whether the job needs the CLIP text tower itself (`Backbone.text`): the text-encoder classifier."""
        return recipe.classifier == "text"

    def tunes_image_tower(self, recipe: Recipe) -> bool:
        """Whether the regime acts on the image tower (a ResNet takes only what LIFT-plus implements for it)."""
        return True

    def needs_text_embeddings(self, recipe: Recipe) -> bool:
        """Whether the job needs the class prompts' frozen text embeddings (`Backbone.text_embeddings`): for the
        semantic init of a head on the image features."""
        return recipe.classifier_init == "semantic" and recipe.classifier != "text"

    @classmethod
    def changes_backbone(cls, recipe: Recipe) -> bool:
        """Whether it trains anything besides a classifier on the image features: tensors or modules of its own
        (it overrides `adapt`), or the text side of a text-encoder classifier (what WiSE-FT interpolates)."""
        return cls.trains and (cls.adapt is not Regime.adapt or recipe.classifier == "text")

    def check(self, recipe: Recipe, backbone: Backbone) -> None:
        """Raise ValueError before any training when `recipe` cannot run on this backbone (overrides call it);
        `backbone.text` is there when `uses_text_tower`."""
        visual = backbone.visual
        if is_resnet(visual) and not self.runs_on_resnet and self.tunes_image_tower(recipe):
            able = ", ".join(name for name in REGIMES.names() if REGIMES.get(name).runs_on_resnet)
            raise ValueError(f"{self.name} needs a ViT tower: {visual.name} is a ResNet, without attention blocks; "
                             f"regimes that run on ResNets: {able}")
        if self.text_side and recipe.classifier != "text":
            raise ValueError(f"{self.name} {self.text_side}, which classify only with classifier=text; leave "
                             f"{self.name}.classifier unset")
        if recipe.classifier == "text":
            if not has_text_tower(visual):
                raise ValueError(needs_text_tower(f"{self.name}: classifier=text", visual.name,
                                                  f"use --set {self.name}.classifier=cosine"))
            if recipe.classifier_init != "semantic":
                raise ValueError(f"{self.name}: classifier=text is the text encoder on the class prompts, which "
                                 f"classifier_init={recipe.classifier_init} cannot initialise; leave "
                                 f"{self.name}.classifier_init at semantic")
        elif recipe.classifier_init == "semantic" and not has_text_tower(visual):
            raise ValueError(needs_text_tower(f"{self.name}: classifier_init=semantic", visual.name,
                                              f"add --set {self.name}.classifier_init=class_mean, the reference's "
                                              f"init for it"))

    def resolve(self, recipe: Recipe, num_classes: int, backbone: Backbone) -> Recipe:
        """`recipe` with its automatic (None) sizes replaced by the values used for K = `num_classes` classes on
        this backbone (which is not changed); idempotent. The default has none and returns `recipe`."""
        return recipe

    def adapt(self, model: LongTailModel, data: LongTailData, recipe: Recipe) -> None:
        """Make the regime's backbone tensors trainable or inject new ones; the default trains none.
        `recipe` is resolved: its sizes are the ones to use."""

    def build(self, backbone: Backbone, data: LongTailData, recipe: Recipe) -> LongTailModel:
        self.check(recipe, backbone)
        recipe = self.resolve(recipe, data.num_classes, backbone)
        model = LongTailModel(backbone.visual, self.make_head(backbone, data, recipe))
        model.requires_grad_(False)
        if not isinstance(model.head, TextClassifier):  # the text classifier trains what a regime unfreezes
            model.head.requires_grad_(True)
        self.adapt(model, data, recipe)
        if self.trains and not model.trainable_parameters():
            raise ValueError(f"{self.name} with these settings trains no tensor (e.g. layers=0 with "
                             f"classifier=text); change its settings, or use zero_shot")
        return model


class BlockRegime(Regime):
    """A regime that tunes a choice of transformer blocks, the recipe's `layers` (LayersRecipe), of the image
    tower or, with `tower=text`, of the text tower of a text-encoder classifier."""

    recipe: ClassVar[Recipe] = LayersRecipe()
    text_size: ClassVar[int] = 4  # LIFT-plus's l.lora_dim, l.adapter_dim, l.adaptformer_dim (no automatic size)
    injects: ClassVar[bool] = False  # attaches modules at TunableBlock sites (or reads its projections)

    def tower(self, recipe: Recipe, holder) -> nn.Module:
        """The tower the recipe tunes, of a Backbone or a LongTailModel."""
        return holder.visual if recipe.tower == "image" else holder.text

    def tunes_image_tower(self, recipe):
        return recipe.tower == "image"

    def automatic_size(self, recipe: Recipe, num_classes: int, tuned: int, divisor: int = 1) -> int:
        """The size an unset bottleneck, rank or length gets: `bottleneck_size` on the image tower, LIFT-plus's
        fixed l.* default (`text_size`) on the text tower."""
        return bottleneck_size(num_classes, tuned, divisor) if recipe.tower == "image" else self.text_size

    def blocks(self, recipe: Recipe, tower: nn.Module) -> list[int]:
        """Indices of the blocks this recipe tunes on this tower (ValueError when the choice does not fit)."""
        return selected_blocks(recipe.layers, num_blocks(tower), f"{self.name}.layers")

    def tuned_blocks(self, recipe: Recipe, tower: nn.Module, *, sites: bool = True) -> list[nn.Module]:
        """The chosen blocks, as TunableBlocks whose sites take injected modules (`sites`), else as they are."""
        blocks = tunable_blocks(tower) if sites else list(tower_blocks(tower))
        return [blocks[i] for i in self.blocks(recipe, tower)]

    def check(self, recipe: Recipe, backbone: Backbone) -> None:
        super().check(recipe, backbone)
        if recipe.tower == "text" and recipe.classifier != "text":
            raise ValueError(f"{self.name}.tower=text tunes the text tower, which reaches the logits only through "
                             f"the text-encoder classifier: add --set {self.name}.classifier=text")
        tower = self.tower(recipe, backbone)
        problem = self.injects and not is_resnet(tower) and next(
            filter(None, (unsupported_block(block) for block in tower_blocks(tower))), None)
        if problem:
            able = ", ".join(n for n in REGIMES.names() if issubclass(REGIMES.get(n), BlockRegime)
                             and not REGIMES.get(n).injects)
            raise ValueError(f"{self.name} cannot act on the blocks of {backbone.name}: {problem}; regimes that train "
                             f"any block's own tensors: {able}")
        if is_resnet(tower) and recipe.layers is not None:
            raise ValueError(f"{self.name}.layers={recipe.layers} on {tower.name}: on a ResNet LIFT-plus's regimes "
                             f"act on all residual blocks (its *_layers do not apply); leave {self.name}.layers unset")
        self.blocks(recipe, tower)
