import numpy as np

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
