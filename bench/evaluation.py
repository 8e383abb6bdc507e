"""Features, predictions and metrics: top-1, per-class accuracy, many/medium/few means, the LIFT evaluator's
class-balanced summaries (worst class, harmonic and geometric means, macro-F1), bootstrap intervals and
confusion counts."""
from __future__ import annotations

import math

import numpy as np
import torch

from bench.bootstrap import image_intervals
from bench.data.groups import ClassGroups

HMEAN_FLOOR = 0.001  # percent: a class at 0 % counts as 0.001 % in the harmonic mean (LIFT utils/evaluator.py)


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, device: torch.device, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Features N×n×D on the CPU (n crops per image, 1 without test-time ensembling) and labels N.

    A loader of uint8 crops (`uint8=True` transforms) is normalised on `device`, bit for bit as in the workers."""
    from bench.data.loading import batch_normaliser, to_device

    model.eval()
    normalise = batch_normaliser(loader)
    features, labels = [], []
    for images, targets in loader:
        images = to_device(images, device, normalise)
        crops = images.shape[1] if images.ndim == 5 else 1
        with autocast():
            f = model.features(images.flatten(0, 1) if images.ndim == 5 else images)
        features.append(f.float().view(len(targets), crops, -1).cpu())
        labels.append(targets)
    return torch.cat(features), torch.cat(labels)


@torch.no_grad()
def top_predictions(head: torch.nn.Module, features: torch.Tensor, device: torch.device,
                    batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max of the head's logits averaged over the crops of each image, and that logit (float32)."""
    head.eval()
    preds, tops = [], []
    for chunk in features.split(batch_size):
        n, crops = chunk.shape[:2]
        logits = head(chunk.flatten(0, 1).to(device)).float().view(n, crops, -1).mean(dim=1)
        top, pred = logits.max(dim=1)
        preds.append(pred.cpu())
        tops.append(top.cpu())
    if not preds:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return torch.cat(preds).numpy(), torch.cat(tops).numpy()


def predict_from_features(head: torch.nn.Module, features: torch.Tensor, device: torch.device,
                          batch_size: int = 4096) -> np.ndarray:
    """Arg-max of the head's logits averaged over the crops of each image."""
    return top_predictions(head, features, device, batch_size)[0]


def _mean_or_none(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def class_balanced_metrics(hits: np.ndarray, total: np.ndarray, predicted: np.ndarray) -> dict:
    """LIFT's evaluator over the classes present in the split (percent): the worst class, the harmonic mean
    (accuracies floored at HMEAN_FLOOR), the geometric mean (no floor: a class at 0 gives 0; in the log domain,
    where the plain product of 8,142 accuracies would underflow) and scikit-learn's macro-F1 with
    labels=np.unique(y_true), 2TP / (2TP + FP + FN) per class, from correct, true and predicted counts."""
    present = total > 0
    if not present.any():
        return dict.fromkeys(("worst_class_acc", "hmean_acc", "gmean_acc", "macro_f1"))
    hits, total, predicted = hits[present], total[present], predicted[present]
    acc = 100.0 * hits / total
    with np.errstate(divide="ignore"):
        gmean = 0.0 if (acc == 0).any() else float(100.0 * np.exp(np.mean(np.log(acc / 100.0))))
    return {
        "worst_class_acc": float(acc.min()),
        "hmean_acc": float(100.0 / np.mean(100.0 / np.maximum(acc, HMEAN_FLOOR))),
        "gmean_acc": gmean,
        "macro_f1": float(100.0 * np.mean(2.0 * hits / (total + predicted))),  # 2TP+FP+FN = n_true + n_pred > 0
    }


def classification_metrics(preds: np.ndarray, labels: np.ndarray, train_counts: np.ndarray) -> dict:
    """Accuracies in percent; a class absent from the split has accuracy None and is in no mean (`untested_classes`
    counts them), an empty group's mean is None. `ci95`: bootstrap intervals of top-1 and the group means
    (bench.bootstrap)."""
    num_classes = len(train_counts)
    correct = preds == labels
    total = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[correct], minlength=num_classes)
    predicted = np.bincount(preds, minlength=num_classes)[:num_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(total > 0, 100.0 * hits / np.maximum(total, 1), np.nan)
    groups = ClassGroups.from_counts(train_counts).as_dict()
    pairs, counts = np.unique(np.stack([labels, preds]), axis=1, return_counts=True)
    top1 = float(100.0 * correct.mean()) if len(correct) else None
    return {
        "top1": top1,
        "error_rate": None if top1 is None else 100.0 - top1,
        "mean_class_acc": _mean_or_none(per_class),
        **{name: _mean_or_none(per_class[ids]) for name, ids in groups.items()},
        **class_balanced_metrics(hits, total, predicted),
        "ci95": image_intervals(hits, total, groups),
        "num_samples": int(len(labels)),
        "untested_classes": int(np.count_nonzero(total == 0)),
        "per_class_acc": [None if math.isnan(a) else float(a) for a in per_class],
        "confusion": [[int(t), int(p), int(c)] for (t, p), c in zip(pairs.T, counts)],
    }
