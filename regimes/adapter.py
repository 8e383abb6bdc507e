from dataclasses import dataclass
from typing import Optional

from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import BottleneckAdapter, bottleneck_size
from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class AdapterRecipe(Recipe):
    bottleneck: Optional[int] = setting(None, low=1, help="None: 2^max(0, floor(log2(K / (2L))))")


@register_regime("adapter")
class SequentialAdapter(Regime):
    """A bottleneck adapter (own LayerNorm, zero up projection) on each MLP output: h + adapter(h)."""

    summary = "sequential adapter after each MLP + classifier"
    recipe = AdapterRecipe()

    def adapt(self, model, data, recipe):
        blocks = tunable_blocks(model.visual)
        size = recipe.bottleneck or bottleneck_size(data.num_classes, len(blocks), 2)
        for block in blocks:
            block.tuners["adapter"] = BottleneckAdapter(block.width, size)
