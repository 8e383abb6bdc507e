import torch
from torch import nn

from bench.models.towers import is_resnet

from .base import BlockRegime, register_regime


class ScaleShift(nn.Module):
    """SSF: x·γ + β per channel, γ ~ N(1, 0.02), β ~ N(0, 0.02) (so, unlike the adapters, not exactly identity)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(dim))
        self.shift = nn.Parameter(torch.empty(dim))
        nn.init.normal_(self.scale, mean=1.0, std=0.02)
        nn.init.normal_(self.shift, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


@register_regime("ssf")
class SSF(BlockRegime):
    """Scale-and-shift after the qkv, attention-out, MLP-in and MLP-out projections of each tuned block; on a
    ResNet one scale-shift on the pooled feature (LIFT-plus)."""

    summary = "scale-shift after each projection + classifier"
    injects = True
    runs_on_resnet = True

    def adapt(self, model, data, recipe):
        tower = self.tower(recipe, model)
        if is_resnet(tower):
            tower.attach("pooled", ScaleShift(tower.feature_dim))
            return
        for block in self.tuned_blocks(recipe, tower):
            width = block.width
            for site, dim in (("qkv", 3 * width), ("attn_out", width), ("mlp_in", block.mlp_width),
                              ("mlp_out", width)):
                block.attach(site, ScaleShift(dim))
