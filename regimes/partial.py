from dataclasses import dataclass

from bench.fields import MAX_SIZE, setting

from .base import TowerRecipe, num_blocks, register_regime, selected_blocks
from .full import FullFineTuning


@dataclass(frozen=True)
class PartialRecipe(TowerRecipe):
    lr: float = setting(5e-4, low=0, low_open=True,
                        help="full fine-tuning's lr, so that a sweep over `blocks` changes only how much trains")
    blocks: int = setting(1, low=0, high=MAX_SIZE,
                          help="the last k blocks train; 0 is classifier only, L is full fine-tuning")


@register_regime("partial")
class PartialFineTuning(FullFineTuning):
    """The last k transformer blocks (every tensor in them) + classifier (LIFT-plus `fft_layers=k`): full
    fine-tuning with `layers=k`, kept as its own regime with its own lr."""

    summary = "last k blocks + classifier"
    runs_on_resnet = False  # LIFT-plus's fft_layers do not apply to ResNets
    recipe = PartialRecipe()

    def blocks(self, recipe, tower):
        return selected_blocks(recipe.blocks, num_blocks(tower), "partial.blocks")
