from dataclasses import dataclass, replace
from typing import Literal, Optional

import torch
from torch import nn

from bench.fields import MAX_SIZE, setting

from .base import BlockRegime, LayersRecipe, register_regime


class Prompt(nn.Module):
    """P learnable tokens of width D, N(0, 0.02); returns them batched in the input's dtype (site `tokens`)."""

    def __init__(self, length: int, dim: int):
        super().__init__()
        self.prompt = nn.Parameter(torch.empty(length, dim))
        nn.init.normal_(self.prompt, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prompt.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)


@dataclass(frozen=True)
class VPTRecipe(LayersRecipe):
    depth: Literal["deep", "shallow"] = setting(
        "deep", help="prompts in every tuned block (deep) or in the first block only (shallow: layers stays None)")
    length: Optional[int] = setting(None, low=1, high=MAX_SIZE,
                                    help="None: 2^max(0, floor(log2(K / prompted blocks))); 2 on the text tower")


@register_regime("vpt")
class VisualPromptTuning(BlockRegime):
    """Learnable tokens after CLS (after SOT on the text tower), N(0, 0.02): deep replaces them in every block,
    shallow adds them once."""

    text_size = 2  # LIFT-plus's l.pt_len

    summary = "visual prompt tokens (deep or shallow) + classifier"
    injects = True
    recipe = VPTRecipe()

    def blocks(self, recipe, tower):
        if recipe.depth == "deep":
            return super().blocks(recipe, tower)
        if recipe.layers is not None:
            raise ValueError(f"vpt.depth=shallow prompts block 0 only but vpt.layers={recipe.layers}; leave "
                             f"vpt.layers unset, or use vpt.depth=deep with the blocks to prompt")
        return [0]

    def resolve(self, recipe, num_classes, backbone):
        prompted = len(self.blocks(recipe, self.tower(recipe, backbone)))
        if recipe.length is not None or not prompted:
            return recipe
        return replace(recipe, length=self.automatic_size(recipe, num_classes, prompted))

    def check(self, recipe, backbone):
        super().check(recipe, backbone)
        pool = getattr(self.tower(recipe, backbone), "pool_type", "tok") if recipe.tower == "image" else "tok"
        if pool != "tok":
            raise ValueError(f"vpt inserts prompts after the CLS token whose output is the feature; {backbone.name} "
                             f"pools its tokens ({pool!r}), so the prompts would enter the feature itself: use "
                             f"another regime on this model")

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model)):
            block.attach("tokens", Prompt(recipe.length, block.width))
