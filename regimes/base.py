"""Regime interface and registry: a regime is a default recipe plus the set of tensors it trains."""
from __future__ import annotations

import math
from typing import ClassVar

from torch import nn

from bench.data import LongTailData
from bench.models import Backbone, LongTailModel, make_classifier
from bench.registry import REGIMES
from bench.training.recipe import Recipe


def bottleneck_size(num_classes: int, num_layers: int, divisor: int = 1) -> int:
    """The references' automatic size 2^max(0, floor(log2(K / (layers · divisor)))) (a recipe policy: LoRA rank,
    adapter bottleneck, VPT length)."""
    return 2 ** max(0, math.floor(math.log2(num_classes / (num_layers * divisor))))


def num_blocks(visual: nn.Module) -> int:
    return len(visual.transformer.resblocks)


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

    def make_head(self, backbone: Backbone, data: LongTailData, recipe: Recipe) -> nn.Module:
        return make_classifier(recipe.classifier, recipe.classifier_init, backbone, data.num_classes,
                               recipe.classifier_scale)

    def check(self, recipe: Recipe, visual: nn.Module) -> None:
        """Raise ValueError before any training when `recipe` cannot run on this image tower."""

    def resolve(self, recipe: Recipe, num_classes: int, visual: nn.Module) -> Recipe:
        """`recipe` with its automatic (None) sizes replaced by the values used for K = `num_classes` classes on
        this image tower (which is not changed); idempotent. The default has none and returns `recipe`."""
        return recipe

    def adapt(self, model: LongTailModel, data: LongTailData, recipe: Recipe) -> None:
        """Make the regime's backbone tensors trainable or inject new ones; the default trains none.
        `recipe` is resolved: its sizes are the ones to use."""

    def build(self, backbone: Backbone, data: LongTailData, recipe: Recipe) -> LongTailModel:
        recipe = self.resolve(recipe, data.num_classes, backbone.visual)
        model = LongTailModel(backbone.visual, self.make_head(backbone, data, recipe))
        model.requires_grad_(False)
        model.head.requires_grad_(True)
        self.adapt(model, data, recipe)
        return model
