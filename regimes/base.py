"""Regime interface and registry: a regime is a default recipe plus the set of tensors it trains."""
from __future__ import annotations

from typing import ClassVar

from torch import nn

from bench.data import LongTailData
from bench.models import Backbone, LongTailModel, make_classifier
from bench.registry import Registry
from bench.training.recipe import Recipe

REGIMES: Registry[type["Regime"]] = Registry("regime")


def register_regime(name: str):
    """Class decorator: register a Regime subclass under `name` (its `name` attribute is set too)."""

    def decorator(cls: type["Regime"]) -> type["Regime"]:
        cls.name = name
        return REGIMES.register(name)(cls)

    return decorator


class Regime:
    """Subclasses set `recipe` (defaults, a Recipe subclass when the regime has options of its own) and
    override `adapt` (which tensors train, which modules are injected) or `make_head`.

    `build` freezes everything but the head, then lets `adapt` switch on or inject exactly the regime's
    tensors, so the engine only ever trains the parameters whose `requires_grad` is true.
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

    def adapt(self, model: LongTailModel, data: LongTailData, recipe: Recipe) -> None:
        """Make the regime's backbone tensors trainable or inject new ones; the default trains none."""

    def build(self, backbone: Backbone, data: LongTailData, recipe: Recipe) -> LongTailModel:
        model = LongTailModel(backbone.visual, self.make_head(backbone, data, recipe))
        model.requires_grad_(False)
        model.head.requires_grad_(True)
        self.adapt(model, data, recipe)
        return model


def get_regime(name: str) -> Regime:
    return REGIMES.get(name)()
