"""Predictions and metrics: top-1, per-class accuracy, many/medium/few means, confusion counts."""
from __future__ import annotations

import math

import numpy as np
import torch

from bench.data.base import ClassGroups


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device, autocast) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max predictions and labels; a batch of crops (B×n×C×H×W) is scored by the mean of its crop logits."""
    model.eval()
    preds, labels = [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        with autocast():
            if images.ndim == 5:
                b, n = images.shape[:2]
                logits = model(images.flatten(0, 1)).float().view(b, n, -1).mean(dim=1)
            else:
                logits = model(images).float()
        preds.append(logits.argmax(dim=1).cpu())
        labels.append(targets)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def _mean_or_none(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def classification_metrics(preds: np.ndarray, labels: np.ndarray, train_counts: np.ndarray) -> dict:
    """Accuracies in percent; a class absent from the split has accuracy None, an empty group's mean is None."""
    num_classes = len(train_counts)
    correct = preds == labels
    total = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=correct, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(total > 0, 100.0 * hits / np.maximum(total, 1), np.nan)
    groups = ClassGroups.from_counts(train_counts)
    pairs, counts = np.unique(np.stack([labels, preds]), axis=1, return_counts=True)
    return {
        "top1": float(100.0 * correct.mean()) if len(correct) else None,
        "mean_class_acc": _mean_or_none(per_class),
        **{name: _mean_or_none(per_class[ids]) for name, ids in groups.as_dict().items()},
        "num_samples": int(len(labels)),
        "per_class_acc": [None if math.isnan(a) else float(a) for a in per_class],
        "confusion": [[int(t), int(p), int(c)] for (t, p), c in zip(pairs.T, counts)],
    }
