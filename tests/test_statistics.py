import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from bench.statistics import (HIST_EDGES, QUANTILES, CrossProducts, class_cka, class_statistics, group_summary,
                              job_summary, pairwise_spread, pooled_cka)


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


def _cka(x, y):
    """Linear CKA as Kornblith et al. write it: ‖ỸᵀX̃‖² / (‖X̃ᵀX̃‖ ‖ỸᵀỸ‖), float64, centred columns."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.sum((y.T @ x) ** 2) / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _pinv(matrix):
    """The pseudo-inverse on the eigen-directions above 1e-10 of the largest (the rank is clear-cut in the tests)."""
    w, v = np.linalg.eigh(matrix)
    keep = w > 1e-10 * w.max()
    return v[:, keep] / w[keep] @ v[:, keep].T


def _nc1(f, y, num_classes):
    """Per class Tr(Σ_c Σ_B^†)/K over the K classes with two images or more, Σ_c = np.cov(bias=True)."""
    kept = [c for c in range(num_classes) if (y == c).sum() >= 2]
    means = np.stack([f[y == c].mean(0) for c in kept])
    precision = _pinv(np.cov(means.T, bias=True))
    out = np.full(num_classes, np.nan)
    for c in kept:
        out[c] = np.trace(np.cov(f[y == c].T, bias=True) @ precision) / len(kept)
    return out


def _reference(features, labels, num_classes, frozen):
    """The statistics computed the plain way, whole float64 matrices at once, class by class."""
    out, values = {}, {}
    for split in ("train", "test"):
        f, y = features[split].double().numpy(), labels[split].numpy()
        out[f"{split}_nc1"] = _nc1(f, y, num_classes)
        out[f"{split}_class_cka"] = np.array([_cka(f[y == c], frozen[split].double().numpy()[y == c])
                                              if (y == c).sum() >= 3 else np.nan for c in range(num_classes)])
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
    f, y = ({s: t[s].double().numpy() for s in ("train", "test")} for t in (features, labels))
    out["frechet"] = np.array([np.sum((f["train"][y["train"] == c].mean(0) - f["test"][y["test"] == c].mean(0)) ** 2)
                               + np.sum((f["train"][y["train"] == c].std(0) - f["test"][y["test"] == c].std(0)) ** 2)
                               if min((y["train"] == c).sum(), (y["test"] == c).sum()) >= 2 else np.nan
                               for c in range(num_classes)])
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


def _one_class_cka(x, y, chunk_rows=7):
    """CKA of all rows by the three routes: per class (one class), pooled over the split and over one group."""
    labels = torch.zeros(len(x), dtype=torch.long)
    per_class = class_cka(x, y, labels, 1, chunk_rows=chunk_rows)[0]
    pooled = pooled_cka({"test": x, "train": x[:0]}, {"test": labels, "train": labels[:0]},
                        {"test": y, "train": y[:0]}, {"few": np.array([0])}, 1, chunk_rows=chunk_rows)["test"]
    return per_class, pooled["all"], pooled["few"]


@pytest.mark.parametrize("rows", [6, 40])  # the Gram form below D = 12 images, cross products in chunks above
def test_linear_cka_equals_the_direct_formula_and_has_its_invariances(rows):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 12, generator=g, dtype=torch.float64) + 3.0  # off-centre: centring matters
    y = x @ torch.randn(12, 9, generator=g, dtype=torch.float64)
    y += torch.randn(rows, 9, generator=g, dtype=torch.float64)
    expected = _cka(x.numpy(), y.numpy())
    np.testing.assert_allclose(_one_class_cka(x, y), expected, rtol=1e-10)
    np.testing.assert_allclose(_one_class_cka(x, x.clone()), 1.0, rtol=1e-12)  # Y = X, computed
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    np.testing.assert_allclose(_one_class_cka(x @ q, y), expected, rtol=1e-10)  # orthogonal transform
    np.testing.assert_allclose(_one_class_cka(x, 7.5 * y), expected, rtol=1e-10)  # isotropic scaling
    stretched = x @ torch.diag(torch.logspace(-1, 1, 12, dtype=torch.float64))  # a general linear map
    assert abs(_one_class_cka(stretched, y)[0] - expected) > 0.01
    assert abs(_one_class_cka(stretched, x)[0] - 1.0) > 0.01


def test_cka_is_one_for_the_same_tensor_and_nan_below_three_images():
    x = torch.randn(10, 4)
    labels = torch.tensor([0] * 2 + [1] * 8)
    np.testing.assert_equal(class_cka(x, x, labels, 3), [np.nan, 1.0, np.nan])  # a frozen tower: 1, not computed
    assert np.isnan(class_cka(x, torch.randn(10, 4), labels, 3)[0])
    cka = pooled_cka({"train": x, "test": x}, {"train": labels, "test": labels}, {"train": x, "test": x},
                     {"few": np.array([0]), "many": np.array([1])}, 3)
    assert cka["test"]["all"] == cka["test"]["many"] == 1.0 and np.isnan(cka["test"]["few"])  # 2 images


def test_pooled_cka_over_groups_matches_the_rows_of_their_classes():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 6, (150,), generator=g)
    x, y = torch.randn(150, 5, generator=g), torch.randn(150, 5, generator=g)
    y += 2 * x
    groups = {"many": np.array([0, 1]), "few": np.array([2, 4]), "medium": np.array([], dtype=int)}
    cka = pooled_cka({"train": x, "test": x[:4]}, {"train": labels, "test": labels[:4]}, {"train": y, "test": y[:4]},
                     groups, 6, chunk_rows=16)["train"]
    xn, yn, yl = x.double().numpy(), y.double().numpy(), labels.numpy()
    np.testing.assert_allclose(cka["all"], _cka(xn, yn), rtol=1e-10)  # class 3 and 5 are in no group, but in "all"
    for name in ("many", "few"):
        rows = np.isin(yl, groups[name])
        np.testing.assert_allclose(cka[name], _cka(xn[rows], yn[rows]), rtol=1e-10)
    assert np.isnan(cka["medium"])
    with pytest.raises(ValueError, match="must not share a class"):
        pooled_cka({"train": x, "test": x}, {"train": labels, "test": labels}, {"train": y, "test": y},
                   {"a": np.array([0, 1]), "b": np.array([1])}, 6)


def test_cross_products_of_one_shift_add_up():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)
    whole, first, second = CrossProducts(), CrossProducts(x[:5].mean(0), y[:5].mean(0)), None
    whole.add(x.clone(), y.clone())
    second = CrossProducts(first.shift_x, first.shift_y)
    first.add(x[:12].clone(), y[:12].clone())
    second.add(x[12:].clone(), y[12:].clone())
    assert first.merge(second).n == 30
    np.testing.assert_allclose(first.merge(second).cka(), whole.cka(), rtol=1e-12)
    with pytest.raises(ValueError, match="different shifts"):
        whole.merge(first)


def test_nc1_is_zero_for_collapsed_classes_and_the_summaries_count_classes_without_a_frechet_distance():
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 6, generator=g)
    labels = {"train": torch.tensor([0] * 5 + [1] * 4 + [2] * 3 + [3]), "test": torch.tensor([0, 0, 1, 1, 2, 3, 3])}
    collapsed = {s: centres[y] for s, y in labels.items()}  # every image on its class mean
    stats = class_statistics(collapsed, labels, 4)
    np.testing.assert_allclose(stats["train_nc1"][:3], 0.0, atol=1e-12)
    assert np.isnan(stats["train_nc1"][3]) and np.isnan(stats["test_nc1"][2])  # one image: no covariance
    noisy = {s: f + 0.1 * torch.randn(f.shape, generator=g) for s, f in collapsed.items()}
    assert (class_statistics(noisy, labels, 4)["train_nc1"][:3] > 1e-4).all()
    one_point = {s: torch.ones(len(y), 6) for s, y in labels.items()}
    assert np.isnan(class_statistics(one_point, labels, 4)["train_nc1"]).all()  # no between-class spread: undefined
    # class 2 has one test image, class 3 one training image: no Fréchet distance, counted, never 0
    assert np.isnan(stats["frechet"][[2, 3]]).all() and np.isfinite(stats["frechet"][:2]).all()
    groups = {"many": np.array([0, 1]), "few": np.array([2, 3])}
    summary = group_summary(stats, groups)
    assert summary["few"]["frechet"] is None and summary["few"]["frechet_undefined"] == 2
    assert summary["many"]["frechet_undefined"] == 0 and "train_cka" not in summary["many"]
    job = job_summary(stats)
    assert job["frechet_undefined"] == 2 and job["frechet"] == pytest.approx(np.mean(stats["frechet"][:2]))
    assert job["train_nc1"] == pytest.approx(0.0, abs=1e-12)
