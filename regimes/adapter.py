import math
from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from bench.fields import MAX_SIZE, setting
from bench.models.tunable_block import Residual

from .base import BlockRegime, LayersRecipe, register_regime


class BottleneckAdapter(nn.Module):
    """[LN] → down → ReLU → [dropout] → up → ·scale, with a zero up projection so it starts as a no-op.

    LIFT+'s AdaptFormer and Adapter have their own LayerNorm; AdaptFormer's scale is a learnable scalar (1.0).
    The original AdaptFormer has no LayerNorm, a fixed scale 0.1 and dropout 0.1.
    """

    def __init__(self, dim: int, bottleneck: int, *, layer_norm: bool = True, scale: float | None = None,
                 learnable_scale: bool = False, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        if learnable_scale:
            self.scale = nn.Parameter(torch.tensor(1.0 if scale is None else scale))
        else:
            self.scale = 1.0 if scale is None else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.dropout(F.relu(self.down(self.norm(x)))))
        return x * self.scale


@dataclass(frozen=True)
class AdapterRecipe(LayersRecipe):
    bottleneck: Optional[int] = setting(None, low=1, high=MAX_SIZE,
                                        help="None: 2^max(0, floor(log2(K / (2L)))), L the tuned blocks; 4 on the "
                                             "text tower")


@register_regime("adapter")
class SequentialAdapter(BlockRegime):
    """A bottleneck adapter (own LayerNorm, zero up projection) on each tuned block's MLP output: h + adapter(h)."""

    summary = "sequential adapter after each MLP + classifier"
    injects = True
    recipe = AdapterRecipe()

    def resolve(self, recipe, num_classes, backbone):
        tuned = len(self.blocks(recipe, self.tower(recipe, backbone)))
        if recipe.bottleneck is not None or not tuned:
            return recipe
        return replace(recipe, bottleneck=self.automatic_size(recipe, num_classes, tuned, 2))

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model)):
            block.attach("mlp_out", Residual(BottleneckAdapter(block.width, recipe.bottleneck)))
