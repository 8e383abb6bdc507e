"""IA3 (Liu et al. 2022) as an ltbench plugin: learned per-channel scales of each block's keys, values and MLP
hidden units, all starting at 1, so training starts from the pre-trained model."""
import torch
from torch import nn

from regimes.base import BlockRegime, register_regime


class ChannelScale(nn.Module):
    """y ↦ y·s on the last `channels` channels of y, the others unchanged; s starts at 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        kept, scaled = y.split([y.shape[-1] - len(self.scale), len(self.scale)], dim=-1)
        return torch.cat([kept, scaled * self.scale.to(y.dtype)], dim=-1)


@register_regime("my_ia3")
class IA3(BlockRegime):
    """Scales k and v (the last two thirds of the fused qkv output) and the MLP's hidden units (before the
    activation: the block's mlp_in site) of each tuned block."""

    summary = "IA3: scaled keys, values and MLP hidden units + classifier"
    injects = True  # attaches modules at TunableBlock sites

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model)):
            block.attach("qkv", ChannelScale(2 * block.width))
            block.attach("mlp_in", ChannelScale(block.mlp_width))
