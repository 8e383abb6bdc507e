"""Losses: plain cross-entropy and logit-adjusted cross-entropy CE(z + tau·log pi, y)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class LogitAdjustedLoss(nn.Module):
    """Menon et al.'s logit adjustment with the training class frequencies pi; the test uses raw logits."""

    def __init__(self, class_counts: np.ndarray, tau: float = 1.0):
        super().__init__()
        counts = torch.as_tensor(np.asarray(class_counts), dtype=torch.float32)
        if (counts <= 0).any():
            raise ValueError("logit adjustment needs at least one training image per class")
        self.register_buffer("log_prior", torch.log(counts / counts.sum()))
        self.tau = tau

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.tau * self.log_prior.to(logits.dtype), labels)


def make_loss(name: str, class_counts: np.ndarray, tau: float = 1.0) -> nn.Module:
    if name == "la":
        return LogitAdjustedLoss(class_counts, tau)
    if name == "ce":
        return nn.CrossEntropyLoss()
    raise ValueError(f"unknown loss {name!r}; valid: la, ce")
