from dataclasses import dataclass

from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class PartialRecipe(Recipe):
    lr: float = setting(5e-4, low=0, low_open=True,
                        help="full fine-tuning's lr, so that a sweep over `blocks` changes only how much trains")
    blocks: int = setting(1, low=0, help="the last k blocks train; 0 is classifier only, L is full fine-tuning")


@register_regime("partial")
class PartialFineTuning(Regime):
    """The last k transformer blocks (every tensor in them) + classifier (LIFT-plus `fft_layers=k`)."""

    summary = "last k blocks + classifier"
    lightweight = False
    recipe = PartialRecipe()

    def check(self, recipe, visual):
        depth = len(visual.transformer.resblocks)
        if recipe.blocks > depth:
            raise ValueError(f"partial.blocks={recipe.blocks} but the model has {depth} blocks; "
                             f"use --set partial.blocks=0..{depth}")

    def adapt(self, model, data, recipe):
        self.check(recipe, model.visual)
        blocks = model.visual.transformer.resblocks
        for block in list(blocks)[len(blocks) - recipe.blocks:]:
            block.requires_grad_(True)
