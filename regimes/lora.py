from dataclasses import dataclass
from typing import Optional

from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import LoRA, bottleneck_size
from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class LoRARecipe(Recipe):
    rank: Optional[int] = setting(None, low=1,
                                  help="None: 2^max(0, floor(log2(K / (4L)))), 16 for ImageNet-LT on ViT-B/16")


@register_regime("lora")
class LoRARegime(Regime):
    """LoRA on q and v of every block's fused qkv projection: q += x·A·B/r, v likewise (LIFT-plus's LoRA).

    Not peft: on nn.MultiheadAttention peft adapts the whole fused projection and out_proj, and initialises
    A with bound 1/√D instead of the reference's 1/√r (see README).
    """

    summary = "LoRA on q and v + classifier"
    recipe = LoRARecipe()

    def adapt(self, model, data, recipe):
        blocks = tunable_blocks(model.visual)
        rank = recipe.rank or bottleneck_size(data.num_classes, len(blocks), 4)
        for block in blocks:
            block.tuners["lora_q"] = LoRA(block.width, rank)
            block.tuners["lora_v"] = LoRA(block.width, rank)
