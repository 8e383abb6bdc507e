"""`demo_lt`: the embedded demo's target data set, objects in the `target` style with a CIFAR-100-LT profile."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import LongTailData
from .registry import register_dataset
from .shapes import concept_name, latin_square_concepts, render
from .synthetic import generated_long_tail


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
        rngs = {split: np.random.default_rng([self.seed, i]) for i, split in enumerate(("train", "test"))}
        return generated_long_tail(self, "demo_lt", [concept_name(c) for c in concepts],
                                   lambda labels, split: render(concepts[labels], "target", rngs[split]))
