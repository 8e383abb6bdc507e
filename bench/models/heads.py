"""Classifier heads on the D-dim feature, and the model that trains: image tower + head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone, image_features, needs_text_tower
from .sites import Attachable, Sites
from .text_tower import TextTower


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


class L2NormClassifier(LinearClassifier):
    """z_k = f · w_k / |w_k|: unit-norm class weights on the raw feature, no scale, no bias (LIFT-plus)."""

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__(feature_dim, num_classes, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, F.normalize(self.weight, dim=-1))


class LayerNormClassifier(L2NormClassifier):
    """z_k = LN(f) · w_k / |w_k| with a LayerNorm of no affine parameters and eps 1e-12 (LIFT-plus)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(F.layer_norm(features, features.shape[-1:], eps=1e-12))


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


class TextClassifier(Attachable):
    """The text encoder as the classifier (LIFT-plus with `classifier: None`): z_k = exp(logit_scale) ·
    cos(f W_img, t_k W_text), the K prompts encoded afresh in every forward so that text-side modules train.

    The `image` and `text` sites transform the projected embeddings (CLIP-Adapter); `image_projection` (D×E,
    the identity for a CLIP ResNet, whose pool already projects) and the text tower's projection are frozen
    unless a regime unfreezes them. The logit scale never trains (as in LIFT-plus)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        if backbone.text is None:
            raise ValueError(needs_text_tower("the text-encoder classifier", backbone.name,
                                              "use a CLIP model, or a classifier on the image features"))
        self.text = backbone.text
        self.image_projection = nn.Parameter(backbone.image_projection.clone(), requires_grad=False)
        self.logit_scale = backbone.logit_scale
        self.tuners = Sites(("image", "text"))

    def class_embeddings(self) -> torch.Tensor:
        """K×E: the prompts through the text tower, projected, and through the `text` site."""
        return self._transform("text", self.text.project(self.text()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = self._transform("image", features @ self.image_projection.to(features.dtype))
        if self.training:
            text = self.class_embeddings()
        else:
            with torch.no_grad():
                text = self.class_embeddings()
        image, text = F.normalize(image, dim=-1), F.normalize(text.to(image.dtype), dim=-1)
        return self.logit_scale * image @ text.T


HEADS = {"cosine": CosineClassifier, "linear": LinearClassifier, "l2norm": L2NormClassifier,
         "layernorm": LayerNormClassifier, "text": TextClassifier}
INITS = ("semantic", "random", "class_mean", "linear_probing")
IMAGE_INITS = ("class_mean", "linear_probing")  # from training images: bench.models.head_init, after build


def make_classifier(kind: str, init: str, backbone: Backbone, num_classes: int, scale: float) -> nn.Module:
    """A head of `kind` initialised from text (semantic) or at random; the image-feature inits start random and
    are overwritten by `bench.models.head_init.initialise_head` once the regime's modules are attached."""
    if kind not in HEADS:
        raise ValueError(f"unknown classifier {kind!r}; valid: {', '.join(HEADS)}")
    if init not in INITS:
        raise ValueError(f"unknown classifier init {init!r}; valid: {', '.join(INITS)}")
    if kind == "text":
        return TextClassifier(backbone)
    dim = backbone.feature_dim
    head = HEADS[kind](dim, num_classes, scale) if kind == "cosine" else HEADS[kind](dim, num_classes)
    if init == "semantic":
        with torch.no_grad():
            head.weight.copy_(backbone.semantic_weights())
            if head.bias is not None:
                head.bias.zero_()
    return head


class LongTailModel(nn.Module):
    """Image tower + head. The towers stay in eval mode (frozen-backbone convention of the references)."""

    def __init__(self, visual: nn.Module, head: nn.Module):
        super().__init__()
        self.visual = visual
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return image_features(self.visual, images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    @property
    def text(self) -> TextTower | None:
        """The text tower of a text-encoder classifier, else None."""
        return self.head.text if isinstance(self.head, TextClassifier) else None

    def towers(self) -> list[nn.Module]:
        return [self.visual] + ([self.text] if self.text is not None else [])

    def train(self, mode: bool = True) -> "LongTailModel":
        """The towers stay in eval mode, a ResNet's BatchNorm too: its running statistics never change, even when
        full fine-tuning trains its affine parameters (LIFT-plus); injected modules (their dropout) follow `mode`."""
        super().train(mode)
        for tower in self.towers():
            tower.eval()
        for module in self.modules():
            if isinstance(module, Attachable):
                module.tuners.train(mode)
        return self

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def backbone_parameter_count(self) -> int:
        """The pretrained parameters the job uses: the image tower's, and the text tower's when it classifies."""
        return sum(p.numel() for tower in self.towers() for p in tower.parameters())
