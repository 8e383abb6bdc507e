"""Each loss against its formula written again in float64 numpy, per sample or per class, on fixed logits; and
what each precomputes from the class counts against LIFT-plus's own float32 operations, to the bit."""
import math
import types
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.training.losses import LOSSES, LDAMLoss, make_loss
from bench.training.recipe import Recipe

COUNTS = np.array([300, 90, 25, 8, 3, 1])
PRIOR = COUNTS / COUNTS.sum()
K = len(COUNTS)
LOGITS = np.random.default_rng(0).normal(scale=4.0, size=(10, K))
LABELS = np.array([0, 1, 2, 3, 4, 5, 0, 0, 1, 5])  # every class
PARTIAL = np.array([0, 0, 1, 0, 2, 1, 0, 3, 0, 0])  # classes 4 and 5 absent


def _torch_loss(recipe: Recipe, labels=LABELS, logits=LOGITS) -> float:
    loss = make_loss(recipe, COUNTS)
    return float(loss(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels)))


def _nll(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-log softmax(z_i)[y_i] for each row, one row at a time."""
    out = []
    for row, label in zip(z, y):
        top = row.max()
        out.append(top + np.log(np.exp(row - top).sum()) - row[label])
    return np.array(out)


def _ce(z, y):
    return _nll(z, y).mean()


def _la(z, y, tau=1.0):
    return _ce(z + tau * np.log(PRIOR), y)


def _focal(z, y, gamma=2.0):
    p = np.exp(z - z.max(1, keepdims=True))
    p = p[np.arange(len(y)), y] / p.sum(1)
    return np.mean(-((1 - p) ** gamma) * np.log(p))


def _ldam(z, y, max_m=0.5, s=25.0):
    margins = COUNTS ** -0.25
    margins = margins * max_m / margins.max()
    shifted = z.copy()
    for i, label in enumerate(y):
        shifted[i, label] -= s * margins[label]  # the target logit only
    return _ce(shifted, y)


def _weighted(z, y, weights):
    per_sample = _nll(z, y)
    return sum(weights[label] * value for label, value in zip(y, per_sample)) / sum(weights[label] for label in y)


def _cb(z, y, beta=0.9999):
    return _weighted(z, y, [(1 - beta) / (1 - beta ** n) for n in COUNTS])


def _grw(z, y, e=1.0):
    return _weighted(z, y, [(COUNTS.sum() / n) ** e for n in COUNTS])


def _lade(z, y, lam=0.1, weight=0.1):
    estimate = 0.0
    for c in range(K):
        members = y == c
        first = z[members, c].sum() / (members.sum() + 1e-8)
        shifted = z[:, c] - np.log(PRIOR[c] + 1e-9) + np.log(1 / K + 1e-9)
        second = np.log(np.mean(np.exp(shifted)))  # logsumexp over the batch - log N
        estimate -= PRIOR[c] * (first - second - lam * second ** 2)
    return _la(z, y) + weight * estimate


# the reference's defaults (LIFT-plus utils/losses.py constructors; trainer.py passes s = classifier_scale = 25)
FORMULAS = {"ce": _ce, "la": _la, "bs": _la, "focal": _focal, "ldam": _ldam, "cb": _cb, "grw": _grw, "lade": _lade}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_each_loss_with_the_default_recipe_is_the_reference_formula_with_its_defaults(name):
    assert _torch_loss(Recipe(loss=name)) == pytest.approx(FORMULAS[name](LOGITS, LABELS), rel=1e-5)


@pytest.mark.parametrize("name, settings, formula", [
    ("la", {"la_tau": 0.5}, lambda z, y: _la(z, y, tau=0.5)),
    ("focal", {"focal_gamma": 0.5}, lambda z, y: _focal(z, y, gamma=0.5)),
    ("ldam", {"ldam_max_margin": 0.3, "classifier_scale": 10.0}, lambda z, y: _ldam(z, y, max_m=0.3, s=10.0)),
    ("cb", {"cb_beta": 0.9}, lambda z, y: _cb(z, y, beta=0.9)),
    ("grw", {"grw_exponent": 0.5}, lambda z, y: _grw(z, y, e=0.5)),
    ("lade", {"lade_lambda": 0.3, "lade_weight": 1.0}, lambda z, y: _lade(z, y, lam=0.3, weight=1.0)),
])
def test_each_loss_reads_its_own_settings(name, settings, formula):
    recipe = Recipe(loss=name, **settings)
    assert _torch_loss(recipe) == pytest.approx(formula(LOGITS, LABELS), rel=1e-5)
    assert _torch_loss(recipe) != pytest.approx(_torch_loss(Recipe(loss=name)), rel=1e-3)


def test_recipe_defaults_are_the_references():
    r = Recipe()
    assert (r.loss, r.la_tau, r.focal_gamma, r.ldam_max_margin, r.classifier_scale) == ("la", 1.0, 2.0, 0.5, 25.0)
    assert (r.cb_beta, r.grw_exponent, r.lade_lambda, r.lade_weight) == (0.9999, 1.0, 0.1, 0.1)


def test_balanced_softmax_is_logit_adjustment_with_tau_one_whatever_la_tau_says():
    assert _torch_loss(Recipe(loss="bs", la_tau=0.3)) == _torch_loss(Recipe(loss="la"))
    assert _torch_loss(Recipe(loss="bs")) != pytest.approx(_torch_loss(Recipe(loss="la", la_tau=0.3)), rel=1e-3)


def test_ldam_shifts_only_the_target_logit_by_s_times_its_margin():
    loss = make_loss(Recipe(loss="ldam", classifier_scale=30.0), COUNTS)
    assert isinstance(loss, LDAMLoss) and loss.scale == 30.0
    margins = COUNTS ** -0.25
    assert loss.margins.numpy() == pytest.approx(0.5 * margins / margins.max(), rel=1e-6)  # rarest class: 0.5
    # a batch of one sample of the rarest class: CE after its own logit dropped by s · 0.5
    z, y = LOGITS[:1], np.array([K - 1])
    moved = z.copy()
    moved[0, K - 1] -= 30.0 * 0.5
    assert float(loss(torch.tensor(z, dtype=torch.float32), torch.tensor(y))) == pytest.approx(_ce(moved, y), rel=1e-5)


def test_lade_on_a_batch_missing_classes_keeps_their_log_sum_exp_term():
    # classes 4 and 5 are absent: first_c = 0, and -pi_c·(-second_c - lambda·second_c²) still counts
    assert _torch_loss(Recipe(loss="lade"), labels=PARTIAL) == pytest.approx(_lade(LOGITS, PARTIAL), rel=1e-5)
    assert _torch_loss(Recipe(loss="lade"), labels=PARTIAL) != pytest.approx(_la(LOGITS, PARTIAL), rel=1e-3)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_are_finite_and_reach_the_logits_at_cosine_scale(name):
    logits = (25 * torch.tensor(LOGITS / np.abs(LOGITS).max(), dtype=torch.float32)).requires_grad_()
    value = make_loss(Recipe(loss=name), COUNTS)(logits, torch.tensor(PARTIAL))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_losses_are_chosen_by_name_and_unknown_names_are_refused():
    kinds = {name: type(make_loss(Recipe(loss=name), COUNTS)).__name__ for name in LOSSES}
    assert kinds == {"la": "LogitAdjustedLoss", "bs": "LogitAdjustedLoss", "ce": "CrossEntropyLoss",
                     "focal": "FocalLoss", "ldam": "LDAMLoss", "cb": "WeightedCrossEntropy",
                     "grw": "WeightedCrossEntropy", "lade": "LADELoss"}
    with pytest.raises(ValueError, match=r"unknown loss 'nope'; valid: bs, cb, ce"):
        make_loss(types.SimpleNamespace(loss="nope"), COUNTS)


def test_the_recipe_takes_exactly_the_registered_losses():
    assert set(LOSSES) == {"la", "ce", "focal", "ldam", "cb", "grw", "bs", "lade"}
    assert {Recipe(loss=name).loss for name in LOSSES} == set(LOSSES)
    with pytest.raises(ValueError, match=r"loss 'nope' is not one of bs, cb, ce, .* load its plugin with --plugin"):
        Recipe(loss="nope")


@pytest.mark.parametrize("name", ["la", "bs", "ldam", "cb", "grw", "lade"])
def test_a_class_without_training_images_is_refused_where_the_loss_needs_its_count(name):
    counts = COUNTS.copy()
    counts[2] = 0
    with pytest.raises(ValueError, match=r"per class; class\(es\) \[2\] have none: train with loss ce or focal"):
        make_loss(Recipe(loss=name), counts)


@pytest.mark.parametrize("name", ["ce", "focal"])
def test_losses_without_counts_accept_an_empty_class(name):
    counts = COUNTS.copy()
    counts[2] = 0
    assert isinstance(make_loss(Recipe(loss=name), counts), nn.Module)


# ImageNet-LT's spread of class sizes, 1280 down to 5 images over 1000 classes
LT_COUNTS = np.round(1280 * (5 / 1280) ** (np.arange(1000) / 999)).astype(int)
LT_COUNTS32 = torch.tensor(LT_COUNTS, dtype=torch.float32)  # what LIFT-plus trainer.py passes: torch.Tensor(list)


def _lt_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """128 random logits and labels over ImageNet-LT's 1000 classes."""
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(scale=4.0, size=(128, 1000)), dtype=torch.float32)
    return logits, torch.tensor(rng.integers(0, 1000, 128))


def _gradient(loss: typing.Callable, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = logits.clone().requires_grad_()
    loss(logits, labels).backward()
    return logits.grad


def _reference_weighted_gradient(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """LIFT-plus utils/losses.py ClassBalancedLoss / GeneralizedReweightLoss forward."""
    return _gradient(lambda z, y: F.cross_entropy(z.to(weights.dtype), y, weight=weights), logits, labels)


def _reference_cb_weights(counts: torch.Tensor, beta: float = 0.9999) -> torch.Tensor:
    """LIFT-plus utils/losses.py ClassBalancedLoss.__init__."""
    weights = (1.0 - beta) / (1.0 - (beta ** counts))
    return weights / torch.mean(weights)


def _reference_grw_weights(counts: torch.Tensor, exp_scale: float = 1.0) -> torch.Tensor:
    """LIFT-plus utils/losses.py GeneralizedReweightLoss.__init__."""
    cls_num_ratio = counts / torch.sum(counts)
    weights = 1.0 / (cls_num_ratio ** exp_scale)
    return weights / torch.mean(weights)


@pytest.mark.parametrize("name", ["cb", "grw"])
def test_class_weights_are_the_references_float32_ones_to_the_bit(name):
    reference_weights = {"cb": _reference_cb_weights, "grw": _reference_grw_weights}[name]
    logits, labels = _lt_batch()
    gradient = _gradient(make_loss(Recipe(loss=name), LT_COUNTS), logits, labels)
    float32 = _reference_weighted_gradient(logits, labels, reference_weights(LT_COUNTS32))
    assert torch.equal(gradient, float32)
    float64 = _reference_weighted_gradient(logits, labels, reference_weights(LT_COUNTS32.double()))
    assert not torch.equal(float64.float(), float32)  # the float64 weights would give other gradients


def _reference_ldam_margins(counts: torch.Tensor, max_m: float = 0.5) -> torch.Tensor:
    """LIFT-plus utils/losses.py LDAMLoss.__init__ (m_list)."""
    m_list = 1.0 / torch.sqrt(torch.sqrt(counts))
    return m_list * (max_m / torch.max(m_list))


def _reference_ldam(logit: torch.Tensor, label: torch.Tensor, s: float = 25.0) -> torch.Tensor:
    """LIFT-plus utils/losses.py LDAMLoss.forward on the CPU: the margin of each sample's class, times s, off its
    target logit."""
    index = torch.zeros_like(logit, dtype=torch.uint8)
    index.scatter_(1, label.view(-1, 1), 1)
    batch_m = torch.matmul(_reference_ldam_margins(LT_COUNTS32)[None, :], index.float().transpose(0, 1)).view((-1, 1))
    return F.cross_entropy(torch.where(index.bool(), logit - batch_m * s, logit), label)


def test_ldam_margins_are_the_references_float32_ones_to_the_bit():
    loss = make_loss(Recipe(loss="ldam"), LT_COUNTS)
    assert torch.equal(loss.margins, _reference_ldam_margins(LT_COUNTS32))
    powered = LT_COUNTS32 ** -0.25
    assert not torch.equal(loss.margins, powered * (0.5 / powered.max()))  # pow(n, -1/4) rounds otherwise
    logits, labels = _lt_batch()
    assert torch.equal(_gradient(loss, logits, labels), _gradient(_reference_ldam, logits, labels))


def _reference_lade(logit: torch.Tensor, label: torch.Tensor, remine_lambda: float = 0.1,
                    estim_loss_weight: float = 0.1) -> torch.Tensor:
    """LIFT-plus utils/losses.py LADELoss (__init__ and forward) on the float32 counts."""
    num_classes = len(LT_COUNTS32)
    prior = LT_COUNTS32 / torch.sum(LT_COUNTS32)
    balanced_prior = torch.tensor(1. / num_classes).float()
    ce_loss = F.cross_entropy(logit + torch.log(prior).unsqueeze(0), label)
    members = label == torch.arange(0, num_classes).view(-1, 1).type_as(label)  # C x N
    x_p = logit.T * members
    x_q = (logit - torch.log(prior + 1e-9) + torch.log(balanced_prior + 1e-9)).T
    first_term = torch.sum(x_p, -1) / (torch.sum(members, -1).float() + 1e-8)
    second_term = torch.logsumexp(x_q, -1) - math.log(x_p.size(-1))
    estim_loss = (first_term - second_term) - (second_term ** 2) * remine_lambda
    return ce_loss + estim_loss_weight * -torch.sum(estim_loss * prior)


def test_lade_prior_terms_are_the_references_float32_ones_to_the_bit():
    logits, labels = _lt_batch()
    loss = make_loss(Recipe(loss="lade"), LT_COUNTS)
    assert torch.equal(_gradient(loss, logits, labels), _gradient(_reference_lade, logits, labels))
    log_prior = torch.log(LT_COUNTS32 / torch.sum(LT_COUNTS32) + 1e-9)
    log_balanced = torch.log(torch.tensor(1 / 1000, dtype=torch.float32) + 1e-9)
    # the shift z - log(pi + eps) + log(1/K + eps) summed in another order rounds otherwise
    assert not torch.equal(logits + (log_balanced - log_prior), logits - log_prior + log_balanced)
