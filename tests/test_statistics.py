import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from bench.statistics import HIST_EDGES, QUANTILES, class_statistics, group_summary, pairwise_spread


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


def _reference(features, labels, num_classes, frozen):
    """The statistics computed the plain way, whole float64 matrices at once, class by class."""
    out, values = {}, {}
    for split in ("train", "test"):
        f, y = features[split].double().numpy(), labels[split].numpy()
        means = np.full((num_classes, f.shape[1]), np.nan)
        spread, per_class = np.empty(len(y)), []
        for c in range(num_classes):
            if (y == c).any():
                means[c] = f[y == c].mean(axis=0)
                unit_mean = means[c] / np.linalg.norm(means[c])
                spread[y == c] = 1 - f[y == c] @ unit_mean / np.linalg.norm(f[y == c], axis=1)
            per_class.append(spread[y == c])
        unit = f / np.linalg.norm(f, axis=1, keepdims=True)
        n = np.bincount(y, minlength=num_classes)
        pair_cos = [(np.sum(unit[y == c].sum(0) ** 2) - n[c]) / (n[c] * (n[c] - 1)) if n[c] > 1 else np.nan
                    for c in range(num_classes)]
        frozen_f = frozen[split].double().numpy()
        frozen_means = np.stack([frozen_f[y == c].mean(0) if n[c] else np.full(f.shape[1], np.nan)
                                 for c in range(num_classes)])
        drift_cos = (means * frozen_means).sum(1) / np.linalg.norm(means, axis=1) / np.linalg.norm(frozen_means, axis=1)
        values[split] = per_class
        out.update({f"{split}_count": n, f"{split}_means": means.astype(np.float32),
                    f"{split}_mean_spread": np.array([v.mean() if len(v) else np.nan for v in per_class]),
                    f"{split}_pairwise_spread": 1 - np.array(pair_cos),
                    f"{split}_quantiles": np.array([np.quantile(v, QUANTILES) if len(v) else [np.nan] * len(QUANTILES)
                                                    for v in per_class]),
                    f"{split}_hist": np.array([np.histogram(np.minimum(np.maximum(v, 0), 1 - 1e-9), HIST_EDGES)[0]
                                               for v in per_class], dtype=np.int32),
                    f"{split}_drift": 1 - drift_cos})
    out["gap_wasserstein"] = np.array([wasserstein_distance(a, b) if len(a) and len(b) else np.nan
                                       for a, b in zip(values["train"], values["test"])])
    for key in ("mean", "pairwise"):
        out[f"gap_{key}"] = out[f"test_{key}_spread"] - out[f"train_{key}_spread"]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_chunked_statistics_equal_the_whole_matrix_computation(dtype):
    g = torch.Generator().manual_seed(0)
    num_classes, dim = 12, 8
    # class 3 has no train image, class 4 no test image, class 5 one train and one test image, class 11 none at all
    labels = {split: torch.randint(6, 11, (n,), generator=g) for split, n in (("train", 230), ("test", 97))}
    labels["train"][[0, 40, 41, 99]] = torch.tensor([0, 4, 5, 1])
    labels["test"][[0, 1, 50, 96]] = torch.tensor([3, 5, 0, 1])
    centres = 3 * torch.randn(num_classes, dim, generator=g)
    features = {s: (centres[y] + torch.randn(len(y), dim, generator=g)).to(dtype) for s, y in labels.items()}
    frozen = {s: torch.randn(len(y), dim, generator=g).to(dtype) for s, y in labels.items()}
    # 16-row chunks: 15 train chunks, classes spanning every border, the last chunk short
    stats = class_statistics(features, labels, num_classes, frozen, chunk_rows=16)
    expected = _reference(features, labels, num_classes, frozen)
    assert stats.keys() == expected.keys()
    for key, value in expected.items():
        assert stats[key].dtype == value.dtype and stats[key].shape == value.shape, key
        np.testing.assert_allclose(stats[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
    assert np.isnan(stats["train_mean_spread"][[3, 11]]).all() and np.isnan(stats["train_pairwise_spread"][5])
    assert stats["train_hist"][5].sum() == 1 and np.isnan(stats["gap_wasserstein"][[3, 4, 11]]).all()
    unchunked = class_statistics(features, labels, num_classes, frozen)  # one chunk
    for key, value in unchunked.items():
        np.testing.assert_allclose(stats[key], value, rtol=1e-12, atol=1e-12, err_msg=key)
