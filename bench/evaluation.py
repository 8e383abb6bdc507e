"""Features, predictions and metrics: top-1, per-class accuracy, many/medium/few means, confusion counts."""
from __future__ import annotations

import math

import numpy as np
import torch

from bench.data.groups import ClassGroups


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, device: torch.device, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Features N×n×D on the CPU (n crops per image, 1 without test-time ensembling) and labels N."""
    model.eval()
    features, labels = [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        crops = images.shape[1] if images.ndim == 5 else 1
        with autocast():
            f = model.features(images.flatten(0, 1) if images.ndim == 5 else images)
        features.append(f.float().view(len(targets), crops, -1).cpu())
        labels.append(targets)
    return torch.cat(features), torch.cat(labels)


@torch.no_grad()
def predict_from_features(head: torch.nn.Module, features: torch.Tensor, device: torch.device,
                          batch_size: int = 4096) -> np.ndarray:
    """Arg-max of the head's logits averaged over the crops of each image."""
    head.eval()
    preds = []
    for chunk in features.split(batch_size):
        n, crops = chunk.shape[:2]
        logits = head(chunk.flatten(0, 1).to(device)).float().view(n, crops, -1).mean(dim=1)
        preds.append(logits.argmax(dim=1).cpu())
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


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
