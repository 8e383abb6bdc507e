import math
from dataclasses import dataclass, replace
from typing import Literal, Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

from bench.fields import setting
from bench.models.backbone import feature_dim
from bench.models.tunable_block import projections

from .base import BlockRegime, LayersRecipe, register_regime


def random_mask(shape: torch.Size, fraction: float, seed: int) -> torch.Tensor:
    """int(numel·fraction) entries chosen by a permutation from a generator seeded afresh for every tensor.

    Re-seeding per tensor (so equally shaped tensors share a mask) is what LIFT-plus does.
    """
    numel = math.prod(shape)
    chosen = torch.randperm(numel, generator=torch.Generator().manual_seed(seed))[:int(numel * fraction)]
    return torch.zeros(numel, dtype=torch.bool).index_fill_(0, chosen, True).view(shape)


class MaskedUpdate(nn.Module):
    """A parametrization: the frozen tensor with the masked entries replaced by trainable values.

    Only the chosen entries exist as a parameter, so momentum and weight decay never touch the others.
    """

    def __init__(self, original: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(original.device))
        self.values = nn.Parameter(original.detach()[self.mask].clone())

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original.masked_scatter(self.mask, self.values.to(original.dtype))


@dataclass(frozen=True)
class SparseRecipe(LayersRecipe):
    fraction: Optional[float] = setting(None, low=0, low_open=True, high=1,
                                        help="trainable share of the tuned blocks' entries; None: K·D in all (a "
                                             "classifier's worth)")
    location: Literal["all", "attn", "mlp"] = setting("all", help="the tensors the mask chooses from: attention, MLP or both")
    mask_seed: int = setting(0, low=0, high=2**63 - 1, help="seed of the random mask (re-seeded per tensor)")


_PROJECTIONS = {"attn": ("qkv", "attn_out"), "mlp": ("mlp_in", "mlp_out"),
                "all": ("qkv", "attn_out", "mlp_in", "mlp_out")}


def _targets(block, location: str) -> list[tuple[object, str]]:
    found = projections(block)  # site -> (owner, weight name, bias name)
    return [(found[site][0], name) for site in _PROJECTIONS[location] for name in found[site][1:]]


@register_regime("sparse")
class SparseFineTuning(BlockRegime):
    """A fixed random fraction of the entries of each tuned block's attention/MLP weights and biases trains (LIFT-plus's
    "arbitrary fine-tuning"); each tensor's mask comes from a generator seeded with `mask_seed`."""

    summary = "random fraction of block weight entries + classifier"
    injects = True
    recipe = SparseRecipe()

    def resolve(self, recipe, num_classes, backbone):
        tower = self.tower(recipe, backbone)
        blocks = self.tuned_blocks(recipe, tower, sites=False)
        if recipe.fraction is not None or not blocks:
            return recipe
        eligible = sum(getattr(module, name).numel() for block in blocks
                       for module, name in _targets(block, recipe.location))
        width = tower.width if recipe.tower == "text" else feature_dim(tower)
        # K·D entries; over 1 (more classes than eligible entries / D) every entry trains, as with 1
        return replace(recipe, fraction=min(1.0, num_classes * width / eligible))

    def adapt(self, model, data, recipe):
        tower = self.tower(recipe, model)
        targets = [t for block in self.tuned_blocks(recipe, tower) for t in _targets(block, recipe.location)]
        for module, name in targets:
            original = getattr(module, name)
            mask = random_mask(original.shape, recipe.fraction, recipe.mask_seed)
            if mask.any():
                parametrize.register_parametrization(module, name, MaskedUpdate(original, mask))
