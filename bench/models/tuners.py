"""The small modules that lightweight regimes inject into a frozen ViT, initialised as in LIFT-plus."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def bottleneck_size(num_classes: int, num_layers: int, divisor: int = 1) -> int:
    """The references' automatic size 2^max(0, floor(log2(K / (layers · divisor))))."""
    return 2 ** max(0, math.floor(math.log2(num_classes / (num_layers * divisor))))


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
