from dataclasses import dataclass

from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class PartialRecipe(Recipe):
    lr: float = 5e-4  # full fine-tuning's lr, so that a sweep over `blocks` changes only how much trains
    blocks: int = 1  # the last k blocks train; 0 is classifier only, L is full fine-tuning

    def __post_init__(self):
        if self.blocks < 0:
            raise ValueError(f"partial.blocks must be >= 0, got {self.blocks}")


@register_regime("partial")
class PartialFineTuning(Regime):
    """The last k transformer blocks (every tensor in them) + classifier (LIFT-plus `fft_layers=k`)."""

    summary = "last k blocks + classifier"
    lightweight = False
    recipe = PartialRecipe()

    def adapt(self, model, data, recipe):
        blocks = model.visual.transformer.resblocks
        if recipe.blocks > len(blocks):
            raise ValueError(f"partial.blocks={recipe.blocks} but the model has {len(blocks)} blocks")
        for block in list(blocks)[len(blocks) - recipe.blocks:]:
            block.requires_grad_(True)
