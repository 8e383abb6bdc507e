"""`demo_lt`: the embedded demo's target data set, objects in the `target` style with a CIFAR-100-LT profile."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import ArrayImages, LongTailData
from .cifar import cifar_lt_counts
from .registry import register_dataset
from .shapes import concept_name, latin_square_concepts, render


@register_dataset("demo_lt")
@dataclass(frozen=True)
class DemoLT:
    """100 nameable objects; training counts from `max_per_class` down by `imbalance_ratio`, balanced test."""

    num_classes: int = 100
    max_per_class: int = 150
    imbalance_ratio: float = 100.0
    test_per_class: int = 20
    seed: int = 0
    epochs: int = 5

    def build(self, data_root: Path, download: bool) -> LongTailData:
        if not 2 <= self.num_classes <= 100:
            raise ValueError("demo_lt.num_classes must be 2..100")
        concepts = np.asarray(latin_square_concepts(self.num_classes))
        counts = cifar_lt_counts(self.max_per_class, self.num_classes, self.imbalance_ratio)
        train_labels = np.repeat(np.arange(self.num_classes), counts)
        test_labels = np.repeat(np.arange(self.num_classes), self.test_per_class)
        train_rng, test_rng = (np.random.default_rng([self.seed, split]) for split in (0, 1))
        prefix = f"demo_lt/k{self.num_classes}-n{self.max_per_class}-ir{self.imbalance_ratio:g}-s{self.seed}"
        return LongTailData(
            name="demo_lt",
            classnames=[concept_name(c) for c in concepts],
            train=ArrayImages(render(concepts[train_labels], "target", train_rng), train_labels, f"{prefix}/train"),
            test=ArrayImages(render(concepts[test_labels], "target", test_rng), test_labels, f"{prefix}/test"),
            default_epochs=self.epochs,
        )
