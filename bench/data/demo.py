"""`demo_lt`: the embedded demo's target data set, objects in the `target` style with a CIFAR-100-LT profile."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fields import MAX_EPOCHS, MAX_SIZE, check_fields, setting

from .base import LongTailData
from .options import UntestedClasses
from .registry import register_dataset
from .shapes import concept_name, latin_square_concepts, render
from .synthetic import generated_long_tail
from .validation import HeldOutValidation


@register_dataset("demo_lt")
@dataclass(frozen=True)
class DemoLT(HeldOutValidation, UntestedClasses):
    """100 nameable objects; training counts from `max_per_class` down by `imbalance_ratio`, balanced test."""

    num_classes: int = setting(100, low=2, high=100, help="classes, head first")
    max_per_class: int = setting(150, low=1, high=MAX_SIZE, help="training images of the largest class")
    imbalance_ratio: float = setting(100.0, low=1, help="largest over smallest class (exponential profile)")
    test_per_class: int = setting(20, low=1, high=MAX_SIZE, help="balanced test images per class")
    seed: int = setting(0, low=0, high=2**63 - 1, help="seed of the generated images (the split)")
    epochs: int = setting(5, low=1, high=MAX_EPOCHS, help="epochs of a regime whose recipe leaves them unset")

    def __post_init__(self):
        check_fields(self)

    def build(self, data_root: Path, download: bool) -> LongTailData:
        concepts = np.asarray(latin_square_concepts(self.num_classes))
        rngs = {split: np.random.default_rng([self.seed, i]) for i, split in enumerate(("train", "test"))}
        return generated_long_tail(self, "demo_lt", [concept_name(c) for c in concepts],
                                   lambda labels, split: render(concepts[labels], "target", rngs[split]))
