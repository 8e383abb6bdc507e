"""Class-conditional feature statistics: how far a regime moves the train and test feature distributions apart.

For every class c and split s: the spread 1 − cos(f_i, μ_c,s) of each sample to its split's own class mean
(the papers' plots), and the pairwise spread 1 − mean cos over distinct same-class pairs, which is not biased
by class size (a 2-image class sits close to its own mean). The train/test gap of a class compares the two
splits: 1-D Wasserstein distance between the spread distributions, difference of mean spreads, difference of
pairwise spreads (the headline: heavy fine-tuning collapses tail *training* features, test ones spread out).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance

HIST_EDGES = np.linspace(0.0, 1.0, 41)  # fixed bins of 1 − cos; larger values land in the last bin
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
SPLITS = ("train", "test")
CHUNK_ROWS = 32_768  # rows converted to float64 at a time: 192 MB at 768 dims
COS_EPS = 1e-8  # F.cosine_similarity's floor on a norm


def _row_chunks(features: torch.Tensor, labels: torch.Tensor, chunk_rows: int):
    """(float64 rows, their labels), `chunk_rows` rows at a time: the float64 copy of an iNaturalist-size feature
    matrix alone is 2.7 GB, a chunk of it a few hundred MB. The rows are a copy in one buffer reused for every
    chunk (a fresh one would be page-faulted in again each time): the caller may overwrite them, and must be done
    with them before the next chunk."""
    buffer = torch.empty(min(chunk_rows, len(labels)), features.shape[1], dtype=torch.float64)
    for start in range(0, len(labels), chunk_rows):
        row_labels = labels[start:start + chunk_rows]
        yield buffer[:len(row_labels)].copy_(features[start:start + chunk_rows]), row_labels


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """K×D float64 means (NaN rows for classes without samples), summed in float64 chunk by chunk."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        sums.index_add_(0, row_labels, rows)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return (sums / counts[:, None]).masked_fill(counts[:, None] == 0, float("nan"))


def pairwise_spread(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                    chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Per class 1 − mean cos over distinct pairs, mean cos = (‖Σ f̂‖² − n) / (n(n − 1)); NaN below 2 samples."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        unit = rows.div_(rows.norm(dim=-1, keepdim=True).clamp_min(1e-12))  # F.normalize, in place
        sums.index_add_(0, row_labels, unit)
    n = torch.bincount(labels, minlength=num_classes).double()
    mean_cos = (sums.pow(2).sum(dim=1) - n) / (n * (n - 1))
    return (1.0 - mean_cos).masked_fill(n < 2, float("nan")).numpy()


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Row norms floored at 1e-8, by which F.cosine_similarity divides each side before its dot product."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(COS_EPS)


def _spreads(features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor, chunk_rows: int) -> np.ndarray:
    """1 − cos(f_i, μ_{y_i}) per sample in float64, without the N×D tensor of gathered means: the means are
    normalised once, each chunk of rows meets only its own slice of them, gathered into one reused buffer."""
    unit_means = means / _norms(means)
    gathered = torch.empty(min(chunk_rows, len(labels)), means.shape[1], dtype=torch.float64)
    spread = [torch.empty(0, dtype=torch.float64)]  # an empty split has no chunk
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        unit_mean = torch.index_select(unit_means, 0, row_labels, out=gathered[:len(row_labels)])
        spread.append(1.0 - rows.div_(_norms(rows)).mul_(unit_mean).sum(dim=-1))
    return torch.cat(spread).numpy()


def split_statistics(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                     chunk_rows: int = CHUNK_ROWS) -> dict[str, np.ndarray]:
    """One split's per-class arrays; "_values" keeps each class's spreads for the train/test Wasserstein gap."""
    means = class_means(features, labels, num_classes, chunk_rows=chunk_rows)
    spread = _spreads(features, labels, means, chunk_rows)
    order = np.argsort(labels.numpy(), kind="stable")
    per_class = np.split(spread[order], np.cumsum(np.bincount(labels.numpy(), minlength=num_classes))[:-1])
    quantiles = np.full((num_classes, len(QUANTILES)), np.nan)
    hist = np.zeros((num_classes, len(HIST_EDGES) - 1), dtype=np.int32)
    mean_spread = np.full(num_classes, np.nan)
    for c, values in enumerate(per_class):
        if len(values):
            quantiles[c] = np.quantile(values, QUANTILES)
            mean_spread[c] = values.mean()
            hist[c] = np.histogram(np.clip(values, 0.0, HIST_EDGES[-1] - 1e-9), HIST_EDGES)[0]
    return {"count": np.bincount(labels.numpy(), minlength=num_classes), "means": means.float().numpy(),
            "mean_spread": mean_spread,
            "pairwise_spread": pairwise_spread(features, labels, num_classes, chunk_rows=chunk_rows),
            "quantiles": quantiles, "hist": hist, "_values": per_class}


def class_statistics(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], num_classes: int,
                     frozen: dict[str, torch.Tensor] | None = None, *,
                     chunk_rows: int = CHUNK_ROWS) -> dict[str, np.ndarray]:
    """Per-class arrays (no raw features) for the train and test splits, their gaps, and the drift of each class
    mean from the frozen pretrained feature of the same images (when `frozen` features are given)."""
    out: dict[str, np.ndarray] = {}
    values = {}
    for split in SPLITS:
        stats = split_statistics(features[split], labels[split], num_classes, chunk_rows=chunk_rows)
        values[split] = stats.pop("_values")
        out.update({f"{split}_{k}": v for k, v in stats.items()})
        if frozen is not None:
            frozen_means = class_means(frozen[split], labels[split], num_classes, chunk_rows=chunk_rows)
            out[f"{split}_drift"] = (1.0 - F.cosine_similarity(torch.from_numpy(stats["means"]).double(),
                                                               frozen_means, dim=-1)).numpy()
    out["gap_wasserstein"] = np.array([wasserstein_distance(a, b) if len(a) and len(b) else np.nan
                                       for a, b in zip(values["train"], values["test"])])
    out["gap_mean"] = out["test_mean_spread"] - out["train_mean_spread"]
    out["gap_pairwise"] = out["test_pairwise_spread"] - out["train_pairwise_spread"]
    return out


GROUP_SCALARS = ("gap_pairwise", "gap_mean", "gap_wasserstein", "train_pairwise_spread", "test_pairwise_spread",
                 "train_mean_spread", "test_mean_spread", "train_drift", "test_drift")


def group_summary(stats: dict[str, np.ndarray], groups: dict[str, np.ndarray]) -> dict[str, dict]:
    """Mean of each per-class scalar over the classes of each group; None for an empty group or no value."""
    summary = {}
    for group, classes in groups.items():
        row = {}
        for key in GROUP_SCALARS:
            if key not in stats:
                continue
            values = stats[key][classes]
            values = values[~np.isnan(values)]
            row[key] = float(values.mean()) if len(values) else None
        summary[group] = row
    return summary
