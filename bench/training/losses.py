"""The long-tail losses of LIFT-plus (utils/losses.py), chosen by `Recipe.loss`; each reads its own settings.

Built from the training class counts n_c (prior pi_c = n_c / sum n). Training only: the test scores raw logits.
No DRW and no re-sampling, as in both references. With `--micro-batch-size` each micro-batch is one call, as
LIFT-plus's `accum_step` does: cb and grw then normalise by each micro-batch's weights, lade estimates per
micro-batch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.registry import LOSSES


def _counts(class_counts: np.ndarray, needs: str) -> torch.Tensor:
    """The counts as float32; `needs` names the term that is undefined for an empty class."""
    counts = torch.as_tensor(np.asarray(class_counts), dtype=torch.float32)
    if counts.ndim != 1 or not len(counts):
        raise ValueError(f"class counts must be a non-empty 1-D array, got shape {tuple(counts.shape)}")
    empty = torch.nonzero(counts <= 0).flatten().tolist()
    if empty:
        raise ValueError(f"{needs} needs at least one training image per class; class(es) {empty[:10]} have "
                         f"none: train with loss ce or focal, or on a split where every class has images")
    return counts


def _log_prior(counts: torch.Tensor) -> torch.Tensor:
    return torch.log(counts / counts.sum())


class LogitAdjustedLoss(nn.Module):
    """Menon et al.'s CE(z + tau·log pi, y); tau = 1 is Ren et al.'s balanced softmax (`bs`)."""

    def __init__(self, class_counts: np.ndarray, tau: float = 1.0):
        super().__init__()
        self.register_buffer("log_prior", _log_prior(_counts(class_counts, "logit adjustment (log pi)")))
        self.tau = tau

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.tau * self.log_prior.to(logits.dtype), labels)


class FocalLoss(nn.Module):
    """Lin et al.'s mean (1 - p_y)^gamma · CE, without the alpha weights (LIFT-plus passes none)."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels, reduction="none")
        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()


class LDAMLoss(nn.Module):
    """Cao et al.'s CE on z with s·m_y taken off the target logit, m_c ∝ n_c^(-1/4), largest = max_margin.
    s is the classifier scale: the logits are already scaled, so only the margin is (LIFT-plus trainer.py).
    n^(-1/4) is 1 / sqrt(sqrt(n)) in float32 as in LIFT-plus: pow(n, -0.25) differs in the last bit."""

    def __init__(self, class_counts: np.ndarray, max_margin: float = 0.5, scale: float = 25.0):
        super().__init__()
        margins = 1.0 / torch.sqrt(torch.sqrt(_counts(class_counts, "LDAM's margin n^(-1/4)")))
        self.register_buffer("margins", margins * (max_margin / margins.max()))
        self.scale = scale

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shift = self.scale * self.margins.to(logits.dtype)[labels]
        return F.cross_entropy(logits - F.one_hot(labels, logits.shape[1]).to(logits.dtype) * shift[:, None], labels)


class WeightedCrossEntropy(nn.Module):
    """Softmax CE weighted per class, PyTorch's mean sum(w_y·CE) / sum(w_y): the base of cb and grw."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.float())

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, weight=self.weights)


def class_balanced_weights(class_counts: np.ndarray, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al.'s (1 - beta) / (1 - beta^n_c), mean 1, in float32 with LIFT-plus's operations (utils/losses.py
    ClassBalancedLoss on its float32 counts): float64 would keep more digits of 1 - beta^n, and other gradients."""
    counts = _counts(class_counts, "the class-balanced weight 1/(1 - beta^n)")
    weights = (1.0 - beta) / (1.0 - (beta ** counts))
    return weights / torch.mean(weights)


def generalized_reweighting_weights(class_counts: np.ndarray, exponent: float = 1.0) -> torch.Tensor:
    """Zhang et al.'s 1 / pi_c^e, mean 1, in float32 with LIFT-plus's operations (utils/losses.py
    GeneralizedReweightLoss on its float32 counts): float64 would give other gradients."""
    counts = _counts(class_counts, "the re-weighting 1/pi^e")
    weights = 1.0 / ((counts / torch.sum(counts)) ** exponent)
    return weights / torch.mean(weights)


class LADELoss(nn.Module):
    """Hong et al.'s balanced-softmax CE + weight · (-sum_c pi_c · regularised MINE bound of class c), the bound
    estimated on the batch (classes absent from it keep the log-sum-exp term), as LIFT-plus codes it."""

    def __init__(self, class_counts: np.ndarray, lam: float = 0.1, weight: float = 0.1):
        super().__init__()
        prior = _counts(class_counts, "LADE (log pi)")
        prior = prior / prior.sum()
        self.register_buffer("prior", prior)
        # log(pi + 1e-9) and log(1/K + 1e-9) in float32: the reference's epsilons and dtype, for the same numbers
        self.register_buffer("log_prior_eps", torch.log(prior + 1e-9))
        self.register_buffer("log_balanced_eps", torch.log(torch.tensor(1 / len(prior), dtype=torch.float32) + 1e-9))
        self.lam, self.weight = lam, weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits + torch.log(self.prior), labels)
        onehot = F.one_hot(labels, len(self.prior)).to(logits.dtype)  # N x C
        first = (logits * onehot).sum(0) / (onehot.sum(0) + 1e-8)
        # z - log(pi + eps) + log(1/K + eps) left to right, as the reference rounds it
        second = torch.logsumexp(logits - self.log_prior_eps + self.log_balanced_eps, dim=0) - math.log(len(labels))
        bound = first - second - self.lam * second ** 2
        return ce + self.weight * -(bound * self.prior).sum()


register_loss = LOSSES.register  # @register_loss("name") on a (recipe, class counts) -> nn.Module function


@register_loss("la")
def _logit_adjusted(recipe, counts):
    return LogitAdjustedLoss(counts, recipe.la_tau)


@register_loss("ce")
def _cross_entropy(recipe, counts):
    return nn.CrossEntropyLoss()


@register_loss("focal")
def _focal(recipe, counts):
    return FocalLoss(recipe.focal_gamma)


@register_loss("ldam")
def _ldam(recipe, counts):
    return LDAMLoss(counts, recipe.ldam_max_margin, recipe.classifier_scale)


@register_loss("cb")
def _class_balanced(recipe, counts):
    return WeightedCrossEntropy(class_balanced_weights(counts, recipe.cb_beta))


@register_loss("grw")
def _generalized_reweighting(recipe, counts):
    return WeightedCrossEntropy(generalized_reweighting_weights(counts, recipe.grw_exponent))


@register_loss("bs")
def _balanced_softmax(recipe, counts):
    return LogitAdjustedLoss(counts, 1.0)


@register_loss("lade")
def _lade(recipe, counts):
    return LADELoss(counts, recipe.lade_lambda, recipe.lade_weight)


def make_loss(recipe, class_counts: np.ndarray) -> nn.Module:
    """The training loss `recipe.loss`, built from the training class counts and its own recipe settings."""
    if recipe.loss not in LOSSES:
        raise ValueError(f"unknown loss {recipe.loss!r}; valid: {', '.join(LOSSES.names())}")
    return LOSSES.get(recipe.loss)(recipe, class_counts)
