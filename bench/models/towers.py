"""Image towers other than open_clip's ViT, behind the few things regimes ask of a tower.

open_clip's VisionTransformer is used as it is, so the tensor names that results record do not change. A CLIP
ResNet and the reference's timm backbones are wrapped in a `Tower`: its forward is the D-dim feature, `blocks`
are what block-level regimes act on, `kind` tells ViT from ResNet, `clip` whether a CLIP text tower shares its
embedding space, and a `pooled` site takes a module on the feature (LIFT-plus's SSF on a ResNet).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .sites import Attachable, Sites

POOLED_SITES = ("pooled",)


class Tower(Attachable):
    kind: ClassVar[str]

    def __init__(self, name: str, trunk: nn.Module, feature_dim: int, image_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], clip: bool):
        super().__init__()
        self.name = name
        self.trunk = trunk  # returns the pooled feature
        self.feature_dim = feature_dim
        self.image_size = image_size
        self.image_mean, self.image_std = tuple(mean), tuple(std)
        self.clip = clip
        self.tuners = Sites(POOLED_SITES)

    @property
    def blocks(self) -> nn.Module:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._transform("pooled", self.trunk(images))


class ResNetTower(Tower):
    """A CLIP ModifiedResNet (feature: the attention pool's output, already in the joint space) or a timm
    ResNet (feature: the global average pool)."""

    kind = "resnet"

    @property
    def blocks(self) -> nn.ModuleList:
        """The residual blocks of layer1..layer4 (not the stem, not the pool): LIFT-plus's `blocks` of a ResNet."""
        stages = (self.trunk.layer1, self.trunk.layer2, self.trunk.layer3, self.trunk.layer4)
        return nn.ModuleList(block for stage in stages for block in stage)


class ViTTower(Tower):
    """A timm ViT-family trunk (VisionTransformer, Eva; alone or as an open_clip model's image tower) without
    classifier. Its feature is what the family's own classifier reads, the trunk's pre-logits: per its
    `global_pool`, the CLS token after the final norm (`token`: CLIP-style ViTs, DINOv2, EVA-02), the patch average
    (`avg`) or the attention-pool latent (`map`: SigLIP)."""

    kind = "vit"

    @property
    def blocks(self) -> nn.Sequential:
        return self.trunk.blocks

    @property
    def num_prefix(self) -> int:
        """Tokens before the patches: CLS and register tokens (0 for SigLIP)."""
        return self.trunk.num_prefix_tokens

    @property
    def num_tokens(self) -> int:
        """Prefix tokens + patches: the tokens that are not prompts."""
        return self.num_prefix + self.trunk.patch_embed.num_patches

    @property
    def pool_type(self) -> str:
        """open_clip's terms: "tok" when the feature is the CLS token, else timm's pooling (avg, map)."""
        return "tok" if self.trunk.global_pool == "token" else self.trunk.global_pool


def tower_blocks(visual: nn.Module) -> nn.Module:
    """The blocks block-level regimes act on, first to last (an indexable container): open_clip's ViT's
    resblocks, or the `blocks` of a Tower or a TextTower."""
    return visual.transformer.resblocks if hasattr(visual, "transformer") else visual.blocks


def is_resnet(visual: nn.Module) -> bool:
    return isinstance(visual, Tower) and visual.kind == "resnet"


def has_text_tower(visual: nn.Module) -> bool:
    """Whether a CLIP text tower shares this tower's embedding space (open_clip towers: always)."""
    return visual.clip if isinstance(visual, Tower) else True
