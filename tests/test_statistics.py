import numpy as np
import torch

from bench.statistics import class_statistics, group_summary, pairwise_spread


def _features(n_per_class, spread, seed, dim=16, classes=3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:classes] * 5
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=g), labels


def test_identical_train_and_test_have_zero_gap():
    f, y = _features(30, 1.0, seed=0)
    stats = class_statistics({"train": f, "test": f}, {"train": y, "test": y}, 3)
    for key in ("gap_wasserstein", "gap_mean", "gap_pairwise"):
        np.testing.assert_allclose(stats[key], 0.0, atol=1e-12)
    assert stats["train_count"].tolist() == [30, 30, 30] and stats["train_hist"].sum() == 90


def test_collapsed_training_features_give_a_large_gap():
    train, y_train = _features(30, 0.05, seed=0)  # tail training images memorised: tight around the mean
    test, y_test = _features(30, 1.5, seed=1)
    stats = class_statistics({"train": train, "test": test}, {"train": y_train, "test": y_test}, 3,
                             frozen={"train": train, "test": test})
    assert (stats["gap_pairwise"] > 0.05).all() and (stats["gap_wasserstein"] > 0.02).all()
    assert (stats["gap_mean"] > 0.02).all()
    np.testing.assert_allclose(stats["train_drift"], 0.0, atol=1e-9)  # compared with itself
    summary = group_summary(stats, {"few": np.array([0, 1, 2]), "many": np.array([], dtype=int)})
    assert summary["few"]["gap_pairwise"] > 0.05 and summary["many"]["gap_pairwise"] is None


def test_pairwise_spread_is_unbiased_where_the_mean_based_one_is_not():
    # the same distribution sampled with 2 and with 200 images: the pairwise spread agrees, 1 − cos to the mean not
    big, y_big = _features(200, 1.0, seed=0, classes=1)
    stats = class_statistics({"train": big, "test": big}, {"train": y_big, "test": y_big}, 1)
    mean_based, pairwise = [], []
    for i in range(0, 200, 2):  # 100 two-image classes drawn from the same distribution
        two = class_statistics({"train": big[i:i + 2], "test": big}, {"train": y_big[:2], "test": y_big}, 1)
        mean_based.append(two["train_mean_spread"][0])
        pairwise.append(two["train_pairwise_spread"][0])
    assert np.mean(mean_based) < 0.7 * stats["test_mean_spread"][0]  # biased low for small classes
    assert abs(np.mean(pairwise) - stats["test_pairwise_spread"][0]) < 0.05 * stats["test_pairwise_spread"][0]
    assert np.isnan(pairwise_spread(big[:1], y_big[:1], 1)[0])  # one image: no pair
