from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import bottleneck_size
from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class VPTRecipe(Recipe):
    depth: Literal["deep", "shallow"] = "deep"  # prompts in every block, or in the first only
    length: Optional[int] = setting(None, low=1, help="None: 2^max(0, floor(log2(K / prompted blocks)))")


@register_regime("vpt")
class VisualPromptTuning(Regime):
    """Learnable tokens after CLS, N(0, 0.02): deep replaces them in every block, shallow adds them once."""

    summary = "visual prompt tokens (deep or shallow) + classifier"
    recipe = VPTRecipe()

    def adapt(self, model, data, recipe):
        if getattr(model.visual, "pool_type", "tok") != "tok":
            raise ValueError("vpt needs a tower that pools the CLS token (pool_type 'tok')")
        blocks = tunable_blocks(model.visual)
        prompted = blocks if recipe.depth == "deep" else blocks[:1]
        length = recipe.length or bottleneck_size(data.num_classes, len(prompted))
        for block in prompted:
            block.prompt = nn.Parameter(torch.empty(length, block.width))
            nn.init.normal_(block.prompt, std=0.02)
