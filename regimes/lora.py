import math
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from bench.fields import MAX_SIZE, setting

from .base import BlockRegime, LayersRecipe, register_regime


class LoRA(nn.Module):
    """x ↦ x·A·B / r. A is D×r with kaiming_uniform(a=√5) on that shape (bound 1/√r, as in LIFT-plus), B = 0."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.down = nn.Parameter(torch.empty(dim, rank))
        self.up = nn.Parameter(torch.zeros(rank, dim))
        self.scale = 1.0 / rank
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.down.to(x.dtype)) @ self.up.to(x.dtype) * self.scale


@dataclass(frozen=True)
class LoRARecipe(LayersRecipe):
    rank: Optional[int] = setting(None, low=1, high=MAX_SIZE,
                                  help="None: 2^max(0, floor(log2(K / (4L)))), L the tuned blocks (16 for ImageNet-LT "
                                       "on ViT-B/16); 4 on the text tower")


@register_regime("lora")
class LoRARegime(BlockRegime):
    """LoRA on q and v of each tuned block's fused qkv projection: q += x·A·B/r, v likewise (LIFT-plus's LoRA).

    Not peft: on nn.MultiheadAttention peft adapts the whole fused projection and out_proj, and initialises
    A with bound 1/√D instead of the reference's 1/√r (see README).
    """

    summary = "LoRA on q and v + classifier"
    injects = True
    recipe = LoRARecipe()

    def resolve(self, recipe, num_classes, backbone):
        tuned = len(self.blocks(recipe, self.tower(recipe, backbone)))
        if recipe.rank is not None or not tuned:
            return recipe
        return replace(recipe, rank=self.automatic_size(recipe, num_classes, tuned, 4))

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model)):
            block.attach("q", LoRA(block.width, recipe.rank))
            block.attach("v", LoRA(block.width, recipe.rank))
