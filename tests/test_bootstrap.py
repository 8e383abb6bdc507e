import itertools

import numpy as np
import pytest

from bench.bootstrap import image_intervals, paired_image_interval, percentile_interval, seed_interval


def test_percentile_interval_is_the_central_95_percent():
    samples = np.arange(1001.0)
    assert percentile_interval(samples) == pytest.approx([25.0, 975.0])
    assert percentile_interval(samples, level=0.5) == pytest.approx([250.0, 750.0])


def _by_resampling_images(correct_by_class: list[np.ndarray], few: list[int], resamples: int, seed: int):
    """The textbook bootstrap: draw each class's images with replacement, recompute top-1 and few-shot mean."""
    rng = np.random.default_rng(seed)
    top1, few_means = [], []
    for _ in range(resamples):
        drawn = [rng.choice(c, size=len(c)) for c in correct_by_class]
        top1.append(100.0 * np.concatenate(drawn).mean())
        few_means.append(np.mean([100.0 * drawn[c].mean() for c in few]))
    return percentile_interval(np.array(top1)), percentile_interval(np.array(few_means))


def test_image_intervals_match_resampling_the_images_within_each_class():
    rng = np.random.default_rng(3)
    sizes, rates = [60, 40, 25, 10, 8], [0.9, 0.7, 0.5, 0.3, 0.6]
    correct = [rng.random(n) < p for n, p in zip(sizes, rates)]
    hits = np.array([c.sum() for c in correct])
    total = np.array(sizes)
    groups = {"many": np.array([0, 1]), "medium": np.array([], dtype=int), "few": np.array([2, 3, 4])}
    ours = image_intervals(hits, total, groups, resamples=4000)
    top1, few = _by_resampling_images(correct, [2, 3, 4], resamples=4000, seed=1)
    assert ours["top1"] == pytest.approx(top1, abs=1.0) and ours["few"] == pytest.approx(few, abs=1.5)
    assert ours["medium"] is None
    assert ours == image_intervals(hits, total, groups, resamples=4000)  # seeded
    assert ours != image_intervals(hits, total, groups, resamples=4000, seed=1)
    assert ours["top1"][0] < 100.0 * hits.sum() / total.sum() < ours["top1"][1]


def test_image_intervals_leave_out_absent_classes():
    hits, total = np.array([10, 0, 3]), np.array([10, 0, 6])  # class 1 has no test image
    few = image_intervals(hits, total, {"few": np.array([1, 2])})["few"]
    steps = np.array(few) / (100.0 / 6)  # class 2 alone: multiples of 1/6 (counting class 1 as 0 would halve them)
    assert np.allclose(steps, np.round(steps)) and few[0] < 50.0 < few[1]
    assert image_intervals(np.array([5, 5]), np.array([5, 5]), {})["top1"] == [100.0, 100.0]
    assert image_intervals(np.zeros(2, int), np.zeros(2, int), {"few": np.array([0])}) == {"top1": None, "few": None}


def test_seed_interval_against_the_exact_bootstrap_distribution():
    values = [70.0, 72.0, 75.0, 77.0]
    means = [np.mean(draw) for draw in itertools.product(values, repeat=4)]  # the 256 equally likely resamples
    assert seed_interval(values, resamples=20000) == pytest.approx(percentile_interval(np.array(means)), abs=0.5)
    assert seed_interval([70.0, None, float("nan")]) is None  # one usable value: no interval
    assert seed_interval([71.5, 71.5]) == [71.5, 71.5]


def test_paired_image_interval_matches_resampling_the_same_images_for_both_jobs():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(5), [40, 30, 12, 9, 6])
    a, b = rng.random(len(labels)) < 0.6, rng.random(len(labels)) < 0.45
    b[labels == 4] = a[labels == 4]  # a class both get equally right: it only narrows the interval
    few = [2, 3, 4]
    ours = paired_image_interval(a, b, labels, few, resamples=4000)
    draws = np.random.default_rng(1)
    by_class = [np.flatnonzero(labels == c) for c in few]
    textbook = []
    for _ in range(4000):
        picked = [draws.choice(images, size=len(images)) for images in by_class]  # one draw for both jobs
        textbook.append(np.mean([100.0 * (a[i].mean() - b[i].mean()) for i in picked]))
    assert ours == pytest.approx(percentile_interval(np.array(textbook)), abs=2.0)
    point = np.mean([100.0 * (a[labels == c].mean() - b[labels == c].mean()) for c in few])
    assert ours[0] < point < ours[1] and ours == paired_image_interval(a, b, labels, few, resamples=4000)


def test_paired_image_interval_edges():
    labels = np.repeat(np.arange(3), 4)
    right, wrong = np.ones(12, bool), np.zeros(12, bool)
    assert paired_image_interval(right, wrong, labels, [0, 1]) == [100.0, 100.0]
    assert paired_image_interval(right, right, labels, [2]) == [0.0, 0.0]  # the same answers: no spread
    assert paired_image_interval(right, wrong, labels, [7]) is None  # a class without test images is left out
