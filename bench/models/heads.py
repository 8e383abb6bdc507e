"""Classifier heads on the D-dim feature, and the model that trains: image tower + head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone, image_features
from .tunable_block import TunableBlock


class LinearClassifier(nn.Linear):
    """A linear layer with bias; random init as in the references: rows uniform(-1, 1) scaled to unit norm, bias 0."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            self.weight.copy_(F.normalize(self.weight, dim=-1))
            if self.bias is not None:
                self.bias.zero_()


class CosineClassifier(LinearClassifier):
    """z_k = scale · cos(f, w_k), no bias (the references' CosineClassifier)."""

    def __init__(self, feature_dim: int, num_classes: int, scale: float = 25.0):
        super().__init__(feature_dim, num_classes, bias=False)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(self.scale * F.normalize(features, dim=-1), F.normalize(self.weight, dim=-1))


class ZeroShotHead(nn.Module):
    """CLIP zero-shot: exp(logit_scale) · cos(f W_img, t_k W_text); nothing in it trains."""

    def __init__(self, proj: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: float):
        super().__init__()
        self.register_buffer("proj", proj.detach().clone())
        self.register_buffer("text", F.normalize(text_embeddings.detach().float(), dim=-1))
        self.logit_scale = logit_scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = F.normalize(features @ self.proj.to(features.dtype), dim=-1)
        return self.logit_scale * image @ self.text.to(image.dtype).T


def make_classifier(kind: str, init: str, backbone: Backbone, num_classes: int, scale: float) -> nn.Module:
    """A cosine or linear classifier initialised from text (semantic) or at random."""
    dim = backbone.feature_dim
    if kind == "cosine":
        head = CosineClassifier(dim, num_classes, scale)
    elif kind == "linear":
        head = LinearClassifier(dim, num_classes)
    else:
        raise ValueError(f"unknown classifier {kind!r}; valid: cosine, linear")
    if init == "semantic":
        with torch.no_grad():
            head.weight.copy_(backbone.semantic_weights())
            if getattr(head, "bias", None) is not None:
                head.bias.zero_()
    elif init != "random":
        raise ValueError(f"unknown classifier init {init!r}; valid: semantic, random")
    return head


class LongTailModel(nn.Module):
    """Image tower + head. The tower stays in eval mode (frozen-backbone convention of the references)."""

    def __init__(self, visual: nn.Module, head: nn.Module):
        super().__init__()
        self.visual = visual
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return image_features(self.visual, images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def train(self, mode: bool = True) -> "LongTailModel":
        """The frozen tower stays in eval mode; injected modules (their dropout, if any) follow `mode`."""
        super().train(mode)
        self.visual.eval()
        for module in self.visual.modules():
            if isinstance(module, TunableBlock):
                module.tuners.train(mode)
        return self

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def backbone_parameter_count(self) -> int:
        return sum(p.numel() for p in self.visual.parameters())
