from dataclasses import dataclass
from typing import Literal, Optional

from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import BottleneckAdapter, bottleneck_size
from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class AdaptFormerRecipe(Recipe):
    variant: Literal["lift", "original"] = "lift"
    bottleneck: Optional[int] = setting(None, low=1,
                                        help="None: lift 2^max(0, floor(log2(K / (2L)))), original 64")


@register_regime("adaptformer")
class AdaptFormer(Regime):
    """A bottleneck branch parallel to each MLP reading the residual stream before ln_2.

    variant=lift (LIFT/LIFT+): own LayerNorm, learnable scale s=1. variant=original (AdaptFormer's authors):
    no LayerNorm, fixed scale 0.1, dropout 0.1, bottleneck 64. Both start as a no-op (zero up projection).
    """

    summary = "AdaptFormer (parallel bottleneck) + classifier"
    recipe = AdaptFormerRecipe()

    def adapt(self, model, data, recipe):
        blocks = tunable_blocks(model.visual)
        if recipe.variant == "original":
            size = recipe.bottleneck or 64
            options = dict(layer_norm=False, scale=0.1, dropout=0.1)
        else:
            size = recipe.bottleneck or bottleneck_size(data.num_classes, len(blocks), 2)
            options = dict(layer_norm=True, learnable_scale=True)
        for block in blocks:
            block.tuners["adaptformer"] = BottleneckAdapter(block.width, size, **options)
