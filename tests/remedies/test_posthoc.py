"""Post-hoc corrections against direct computations: τ-normalisation, logit adjustment by the log prior, cRT and
LWS (loss falls, a seed gives the same head, only LWS's scales train), the class-balanced sampler, the recipe."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.models.heads import CosineClassifier, L2NormClassifier, LayerNormClassifier, LinearClassifier, ZeroShotHead
from bench.overrides import OverrideError, apply_overrides
from bench.remedies.posthoc import (METHODS, PosthocRecipe, class_balanced_indices, logit_adjusted,
                                    normalises_weights, tau_normalised, train_crt, train_lws)

D, K = 8, 4
COUNTS = np.array([60, 20, 6, 2])  # a long tail: 88 training images
TRAINING = {"epochs": 5, "lr": 0.5, "batch_size": 16, "weight_decay": 5e-4, "momentum": 0.9}


def linear_head() -> LinearClassifier:
    """A linear head with rows of different norms (the head class largest) and a non-zero bias."""
    generator = torch.Generator().manual_seed(0)
    head = LinearClassifier(D, K)
    with torch.no_grad():
        head.weight.copy_(torch.randn(K, D, generator=generator) * torch.tensor([[4.0], [2.0], [1.0], [0.5]]))
        head.bias.copy_(torch.randn(K, generator=generator))
    return head


def training_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Long-tailed features N×D around one mean per class."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.repeat_interleave(torch.arange(K), torch.as_tensor(COUNTS))
    means = 2.0 * torch.randn(K, D, generator=generator)
    return means[labels] + torch.randn(len(labels), D, generator=generator), labels


def balanced_loss(head, features, labels) -> float:
    """The class-balanced cross-entropy (each class's mean, averaged): what class-balanced sampling minimises."""
    with torch.no_grad():
        losses = F.cross_entropy(head(features), labels, reduction="none")
    return float(torch.stack([losses[labels == k].mean() for k in range(K)]).mean())


def test_tau_normalisation_against_a_direct_computation():
    head = linear_head()
    z = torch.randn(5, D)
    weight = head.weight.detach()
    for tau in (0.0, 0.5, 1.0):
        normalised = tau_normalised(head, tau)
        assert normalised.bias is None and isinstance(normalised, LinearClassifier)
        expected = weight / weight.norm(dim=1, keepdim=True) ** tau
        assert torch.allclose(normalised.weight, expected)
        assert torch.allclose(normalised(z), z @ expected.T, atol=1e-5)
    assert torch.equal(tau_normalised(head, 0.0).weight, weight)  # τ = 0: the weights unchanged, the bias dropped
    assert torch.allclose(tau_normalised(head, 0.0)(z), head(z) - head.bias, atol=1e-5)
    assert torch.allclose(tau_normalised(head, 1.0).weight.norm(dim=1), torch.ones(K))


def test_tau_normalisation_is_refused_where_it_changes_nothing():
    heads = [CosineClassifier(D, K), L2NormClassifier(D, K), LayerNormClassifier(D, K),
             ZeroShotHead(torch.randn(D, 3), torch.randn(K, 3), 100.0)]
    assert not normalises_weights(linear_head())
    for head in heads:
        assert normalises_weights(head)
        with pytest.raises(ValueError, match="changes nothing"):
            tau_normalised(head, 0.5)
    z = torch.randn(5, D)  # indeed: rescaled rows give the same logits
    cosine = heads[0]
    rescaled = CosineClassifier(D, K)
    with torch.no_grad():
        rescaled.weight.copy_(cosine.weight / cosine.weight.norm(dim=1, keepdim=True) ** 0.5)
    assert torch.allclose(rescaled(z), cosine(z), atol=1e-5)


def test_logit_adjustment_subtracts_tau_times_the_log_prior():
    head = linear_head()
    z = torch.randn(5, D)
    log_prior = np.log(COUNTS / COUNTS.sum())
    for tau in (0.5, 1.0, 2.0):
        adjusted = logit_adjusted(head, COUNTS, tau)
        expected = head(z).detach().numpy() - tau * log_prior
        assert np.allclose(adjusted(z).detach().numpy(), expected, atol=1e-5)
    assert torch.equal(logit_adjusted(head, COUNTS, 0.0)(z), head(z))  # τ = 0: the head's own logits
    rare = logit_adjusted(head, COUNTS, 1.0)(z) - head(z)
    assert (rare.argmax(dim=1) == K - 1).all()  # the rarest class gains most
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have none"):
        logit_adjusted(head, [5, 3, 0, 1], 1.0)
    with pytest.raises(ValueError, match="4 numbers"):
        logit_adjusted(head, [5, 3, 1], 1.0)


def test_class_balanced_sampling_draws_every_class_equally_and_images_uniformly_within():
    labels = torch.repeat_interleave(torch.arange(5), torch.tensor([400, 40, 10, 0, 2]))  # class 3 has no image
    samples = class_balanced_indices(labels, 40_000, torch.Generator().manual_seed(0))
    drawn = labels[samples]
    shares = torch.bincount(drawn, minlength=5).double() / len(samples)
    assert shares[3] == 0
    assert torch.allclose(shares[[0, 1, 2, 4]], torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)  # 4.6 σ
    within = torch.bincount(samples[drawn == 2] - 440, minlength=10).double()  # class 2: images 440..449
    assert len(within) == 10 and (within - within.mean()).abs().max() < 0.15 * within.mean()  # ~1000 each, σ ~ 30
    again = class_balanced_indices(labels, 40_000, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)


def test_crt_reinitialises_the_head_and_lowers_the_balanced_loss_the_same_for_a_seed():
    head, (features, labels) = linear_head(), training_data()
    before = {name: value.clone() for name, value in head.state_dict().items()}
    rng = torch.get_rng_state()
    start = train_crt(head, features, labels, **{**TRAINING, "epochs": 0}, seed=3)
    assert not torch.equal(start.weight, head.weight)  # re-initialised: unit-norm random rows, zero bias
    assert torch.allclose(start.weight.norm(dim=1), torch.ones(K)) and not start.bias.any()
    trained = train_crt(head, features, labels, **TRAINING, seed=3)
    assert balanced_loss(trained, features, labels) < 0.5 * balanced_loss(start, features, labels)
    again = train_crt(head, features, labels, **TRAINING, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))
    other = train_crt(head, features, labels, **TRAINING, seed=4)
    assert not torch.equal(trained.weight, other.weight)
    assert all(torch.equal(head.state_dict()[name], value) for name, value in before.items())  # the parent's kept
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator untouched
    assert not trained.training and type(trained) is LinearClassifier


def test_crt_has_nothing_to_retrain_in_a_zero_shot_head():
    features, labels = training_data()
    with pytest.raises(ValueError, match="zero_shot head has none"):
        train_crt(ZeroShotHead(torch.randn(D, 3), torch.randn(K, 3), 100.0), features, labels, **TRAINING, seed=0)


@pytest.mark.parametrize("head_type", [LinearClassifier, CosineClassifier])
def test_lws_starts_at_one_and_trains_only_the_scales(head_type):
    head, (features, labels) = head_type(D, K), training_data()
    torch.manual_seed(0)
    head.reset_parameters()
    start = train_lws(head, features, labels, **{**TRAINING, "epochs": 0}, seed=3)
    assert torch.equal(start.scales.detach(), torch.ones(K))
    z = torch.randn(5, D)
    assert torch.equal(start(z), head(z))
    trained = train_lws(head, features, labels, **TRAINING, seed=3)
    assert not torch.equal(trained.scales.detach(), torch.ones(K))
    assert all(torch.equal(a, b) for a, b in zip(trained.head.state_dict().values(), head.state_dict().values()))
    assert [name for name, p in trained.named_parameters() if p.requires_grad] == ["scales"]
    assert balanced_loss(trained, features, labels) < balanced_loss(start, features, labels)
    again = train_lws(head, features, labels, **TRAINING, seed=3)
    assert torch.equal(trained.scales, again.scales)


def test_training_data_that_does_not_fit_the_head_is_refused():
    features, labels = training_data()
    with pytest.raises(ValueError, match="N×D"):
        train_crt(linear_head(), features[:, None], labels, **TRAINING, seed=0)
    with pytest.raises(ValueError, match="outside 0..3"):
        train_lws(linear_head(), features, labels + 1, **TRAINING, seed=0)


def test_recipe_reads_lists_from_set_and_refuses_what_it_would_ignore():
    recipe = PosthocRecipe()
    assert recipe.methods == METHODS and recipe.tau_norm_taus[-1] == 1.0 and recipe.adjust_taus[-1] == 2.0
    hash(recipe)
    changed = apply_overrides(recipe, {"adjust_taus": "0,0.5,1", "methods": "logit_adjust,crt", "lr": "0.1"},
                              "posthoc")
    assert changed.adjust_taus == (0.0, 0.5, 1.0) and changed.methods == ("logit_adjust", "crt")
    assert PosthocRecipe(**dataclasses.asdict(changed)) == changed  # a config read back keeps its tuples
    assert PosthocRecipe(adjust_taus=[0.5, 1.0]).adjust_taus == (0.5, 1.0)
    for values, problem in (({"adjust_taus": "-1"}, "must be >= 0"), ({"tau_norm_taus": "0,inf"}, "finite"),
                            ({"methods": "crt,nope"}, "not one of"), ({"methods": "[]"}, "methods is empty"),
                            ({"adjust_taus": "1,1"}, "twice"), ({"adjust_taus": "[]"}, "at least one τ"),
                            ({"methods": "crt", "adjust_taus": "1"}, "adjust_taus is set but methods has no "
                                                                     "logit_adjust"),
                            ({"methods": "tau_norm", "epochs": "3"}, "no crt or lws"),
                            ({"batch_size": "0"}, "batch_size must be >= 1")):
        with pytest.raises(OverrideError, match=problem):
            apply_overrides(recipe, values, "posthoc")
