import numpy as np
import pytest

from bench.evaluation import classification_metrics


def test_metrics_on_constructed_predictions():
    counts = np.array([200, 150, 50, 5])  # groups: many {0,1}, medium {2}, few {3}
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    preds = np.array([0, 1, 1, 1, 2, 0, 0, 0])
    m = classification_metrics(preds, labels, counts)
    assert m["top1"] == 50.0
    assert m["per_class_acc"] == [50.0, 100.0, 50.0, 0.0]
    assert m["many"] == 75.0 and m["medium"] == 50.0 and m["few"] == 0.0
    assert m["mean_class_acc"] == 50.0
    confusion = {(t, p): c for t, p, c in m["confusion"]}
    assert confusion == {(0, 0): 1, (0, 1): 1, (1, 1): 2, (2, 2): 1, (2, 0): 1, (3, 0): 2}


def test_empty_group_and_absent_class_are_none():
    counts = np.array([500, 300, 150])  # every class is many-shot: medium and few are empty
    labels = np.array([0, 1])  # class 2 has no test image
    m = classification_metrics(np.array([0, 0]), labels, counts)
    assert m["medium"] is None and m["few"] is None
    assert m["per_class_acc"] == [100.0, 0.0, None]
    assert m["many"] == 50.0


def test_classes_without_images_are_counted_as_untested():
    counts = np.array([200, 150, 50, 5])
    labels = np.array([0, 0, 2])  # classes 1 and 3 have no image in this split
    m = classification_metrics(np.array([0, 1, 2]), labels, counts)
    assert m["untested_classes"] == 2 and m["few"] is None and m["mean_class_acc"] == 75.0
    assert classification_metrics(labels, labels, np.array([200, 150, 50]))["untested_classes"] == 1


def test_five_crops_are_scored_by_their_mean_logits():
    import torch

    from bench.evaluation import predict_from_features

    # crop 0 votes strongly for class 0, crops 1-4 weakly for class 1: the mean picks 0, a majority vote would not
    crop_logits = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    features = torch.arange(5.0).view(1, 5, 1)  # N×crops×D, feature = crop index
    head = torch.nn.Module()
    head.forward = lambda f: crop_logits[f.view(-1).long()]
    assert predict_from_features(head, features, torch.device("cpu")).tolist() == [0]
    assert predict_from_features(head, features[:, 1:], torch.device("cpu")).tolist() == [1]


def test_class_balanced_metrics_of_lifts_evaluator():
    counts = np.array([200, 150, 50, 5])
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    preds = np.array([0, 1, 1, 1, 2, 0, 0, 0])  # per class 50, 100, 50, 0 %
    m = classification_metrics(preds, labels, counts)
    assert m["error_rate"] == 50.0 and m["worst_class_acc"] == 0.0
    assert m["hmean_acc"] == pytest.approx(100.0 / np.mean([2.0, 1.0, 2.0, 1e5]))  # 0 % counts as 0.001 %
    assert m["gmean_acc"] == 0.0  # no floor: one class at 0 % gives 0
    # F1 per class = 2TP / (2TP + FP + FN): class 0 2/6, class 1 4/5, class 2 2/3, class 3 0
    assert m["macro_f1"] == pytest.approx(100.0 * (2 / 6 + 4 / 5 + 2 / 3 + 0) / 4)
    m = classification_metrics(np.array([0, 1, 1, 1, 2, 2, 3, 0]), labels, counts)  # 50, 100, 100, 50 %
    assert m["gmean_acc"] == pytest.approx(100.0 * (0.5 * 1.0 * 1.0 * 0.5) ** 0.25)
    assert m["hmean_acc"] == pytest.approx(4 / (1 / 50 + 1 / 100 + 1 / 100 + 1 / 50))


def test_geometric_mean_of_many_classes_does_not_underflow():
    classes = 8142
    labels = np.repeat(np.arange(classes), 2)
    preds = labels.copy()
    preds[::2] = (labels[::2] + 1) % classes  # every class at 50 %: the plain product is 0.5^8142 = 0.0
    m = classification_metrics(preds, labels, np.full(classes, 10))
    assert np.prod(np.full(classes, 0.5)) == 0.0
    assert m["gmean_acc"] == pytest.approx(50.0) and m["hmean_acc"] == pytest.approx(50.0)


def test_class_balanced_metrics_count_only_the_classes_of_the_split():
    rng = np.random.default_rng(0)
    counts = np.full(12, 50)
    labels = rng.choice([0, 1, 2, 4, 5, 7, 9], size=300)  # classes 3, 6, 8, 10, 11 have no image
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 12, size=300))
    m = classification_metrics(preds, labels, counts)
    present = np.unique(labels)
    accs = np.array([100.0 * np.mean(preds[labels == c] == c) for c in present])
    assert m["worst_class_acc"] == pytest.approx(accs.min())
    assert m["gmean_acc"] == pytest.approx(100.0 * np.prod(accs / 100.0) ** (1 / len(accs)))
    f1 = [2 * np.sum((preds == c) & (labels == c)) / (np.sum(preds == c) + np.sum(labels == c)) for c in present]
    assert m["macro_f1"] == pytest.approx(100.0 * np.mean(f1))
    metrics = pytest.importorskip("sklearn.metrics")
    assert m["macro_f1"] == pytest.approx(100.0 * metrics.f1_score(labels, preds, average="macro", labels=present))


def test_bootstrap_intervals_are_recorded_and_bracket_the_estimates():
    rng = np.random.default_rng(0)
    counts = np.array([300, 200, 50, 10, 5])
    labels = np.repeat(np.arange(5), 40)
    preds = np.where(rng.random(200) < 0.7, labels, (labels + 1) % 5)
    m = classification_metrics(preds, labels, counts)
    assert set(m["ci95"]) == {"top1", "many", "medium", "few"}
    for name in ("top1", "many", "medium", "few"):
        low, high = m["ci95"][name]
        assert low < m[name] < high
    assert m["ci95"] == classification_metrics(preds, labels, counts)["ci95"]  # a fixed seed
    assert classification_metrics(preds[:80], labels[:80], counts)["ci95"]["few"] is None  # no few-shot image
