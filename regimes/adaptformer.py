from dataclasses import dataclass, replace
from typing import Literal, Optional

from bench.fields import MAX_SIZE, setting

from .adapter import BottleneckAdapter
from .base import BlockRegime, LayersRecipe, register_regime


@dataclass(frozen=True)
class AdaptFormerRecipe(LayersRecipe):
    variant: Literal["lift", "original"] = setting(
        "lift", help="lift: LIFT+'s (LayerNorm, learnable scale); original: AdaptFormer's (scale 0.1, dropout 0.1)")
    bottleneck: Optional[int] = setting(None, low=1, high=MAX_SIZE,
                                        help="None: lift 2^max(0, floor(log2(K / (2L)))), L the tuned "
                                             "blocks (4 on the text tower); original 64")


@register_regime("adaptformer")
class AdaptFormer(BlockRegime):
    """A bottleneck branch parallel to each tuned block's MLP reading the residual stream before ln_2.

    variant=lift (LIFT/LIFT+): own LayerNorm, learnable scale s=1. variant=original (AdaptFormer's authors):
    no LayerNorm, fixed scale 0.1, dropout 0.1, bottleneck 64. Both start as a no-op (zero up projection).
    """

    summary = "AdaptFormer (parallel bottleneck) + classifier"
    injects = True
    recipe = AdaptFormerRecipe()

    def resolve(self, recipe, num_classes, backbone):
        tuned = len(self.blocks(recipe, self.tower(recipe, backbone)))
        if recipe.bottleneck is not None or not tuned:
            return recipe
        size = 64 if recipe.variant == "original" else self.automatic_size(recipe, num_classes, tuned, 2)
        return replace(recipe, bottleneck=size)

    def adapt(self, model, data, recipe):
        if recipe.variant == "original":
            options = dict(layer_norm=False, scale=0.1, dropout=0.1)
        else:
            options = dict(layer_norm=True, learnable_scale=True)
        for block in self.tuned_blocks(recipe, self.tower(recipe, model)):
            block.attach("parallel", BottleneckAdapter(block.width, recipe.bottleneck, **options))
