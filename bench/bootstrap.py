"""Seeded percentile bootstrap intervals: of one job's accuracies over its test images, of a row's mean over its
seeds, of the difference of two rows over the test classes they share, and of the difference of two jobs over the
test images they share. A fixed seed makes the same results give the same intervals."""
from __future__ import annotations

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> list[float]:
    """[lo, hi]: the (1 - level)/2 and (1 + level)/2 quantiles of the bootstrap statistics."""
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return [float(low), float(high)]


def image_intervals(hits: np.ndarray, total: np.ndarray, groups: dict[str, np.ndarray],
                    resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """Intervals (percent) of top-1 and of each group's mean class accuracy when the images of every class are
    resampled with replacement, so the split keeps its per-class counts (a balanced test set stays balanced).
    Resampling class c's n_c images gives Binomial(n_c, hits_c / n_c) correct ones, which is drawn directly.
    Classes absent from the split are left out; an empty group's interval is None."""
    present = total > 0
    rate = np.where(present, hits / np.maximum(total, 1), 0.0)
    correct = np.random.default_rng(seed).binomial(total, rate, size=(resamples, len(total)))
    accuracy = 100.0 * correct[:, present] / total[present]
    positions = np.cumsum(present) - 1  # class id -> its column in `accuracy`
    out = {"top1": percentile_interval(100.0 * correct.sum(axis=1) / total.sum(), level) if present.any() else None}
    for name, ids in groups.items():
        ids = positions[ids[present[ids]]]
        out[name] = percentile_interval(accuracy[:, ids].mean(axis=1), level) if len(ids) else None
    return out


def seed_interval(values, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> list[float] | None:
    """Interval of the mean over a row's seeds, resampling the seeds' values; None with fewer than two."""
    values = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if len(values) < 2:
        return None
    draws = np.random.default_rng(seed).choice(values, size=(resamples, len(values)))
    return percentile_interval(draws.mean(axis=1), level)


def paired_interval(a, b, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> list[float] | None:
    """Interval of mean(a − b) over units (e.g. test classes) that both a and b measured: each draw takes the
    same units for both, so what they share (a hard class is hard for both) cancels instead of widening the
    interval. Units either lacks are left out; None with fewer than two left."""
    return seed_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), resamples, seed, level)


def paired_image_interval(correct_a, correct_b, labels, classes, resamples: int = RESAMPLES, seed: int = SEED,
                          level: float = LEVEL) -> list[float] | None:
    """Interval (points) of the mean over `classes` of accuracy_a(c) − accuracy_b(c) when each class's test images
    are resampled with replacement, the same images for a and b (two jobs on one split, `correct_*` per image in
    its order): an image both get right or wrong adds nothing, so only where they disagree widens it. Per class
    an image is +1 (a right, b wrong), −1 or 0, and drawing its n_c images again is Multinomial(n_c, their shares),
    drawn directly. Classes without a test image are left out; None when none is left."""
    labels = np.asarray(labels)
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    size = int(max(labels.max(initial=-1), max(classes, default=-1))) + 1
    total, plus, minus = (np.bincount(labels[mask], minlength=size) for mask in (np.ones_like(a), a & ~b, ~a & b))
    classes = [c for c in classes if total[c] > 0]
    if not classes:
        return None
    rng = np.random.default_rng(seed)
    diffs = np.zeros(resamples)
    for c in classes:
        drawn = rng.multinomial(total[c], np.array([plus[c], minus[c], total[c] - plus[c] - minus[c]]) / total[c],
                                size=resamples)
        diffs += 100.0 * (drawn[:, 0] - drawn[:, 1]) / total[c]
    return percentile_interval(diffs / len(classes), level)
