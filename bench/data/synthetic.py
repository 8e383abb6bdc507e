"""`synthetic_lt`: a small seeded long-tail image set (coloured gratings) for tests and smoke runs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fields import MAX_EPOCHS, MAX_SIDE, MAX_SIZE, check_fields, setting

from .base import ArrayImages, LongTailData
from .cifar import cifar_lt_counts
from .options import UntestedClasses
from .registry import register_dataset
from .validation import HeldOutValidation

COLOURS = {
    "red": (220, 40, 40), "orange": (240, 140, 30), "yellow": (230, 220, 40), "green": (40, 170, 60),
    "cyan": (40, 200, 210), "blue": (40, 70, 220), "purple": (140, 50, 190), "pink": (240, 120, 180),
    "brown": (130, 80, 40), "gray": (128, 128, 128),
}
PATTERNS = ("stripes", "checks")


def render(labels: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Class c = colour c % 10 on pattern c // 10, with random phase, frequency jitter, contrast and noise."""
    colours = np.array(list(COLOURS.values()), dtype=np.float32) / 255.0
    n = len(labels)
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    freq = rng.uniform(0.25, 0.45, size=(n, 1, 1))
    angle = rng.uniform(0, np.pi, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    u = np.cos(angle) * xx + np.sin(angle) * yy
    v = -np.sin(angle) * xx + np.cos(angle) * yy
    stripes = np.sin(freq * u + phase)
    checks = np.sin(freq * u + phase) * np.sin(freq * v + phase)
    pattern = np.where((labels // len(COLOURS) == 0)[:, None, None], stripes, checks)
    mask = (pattern > 0).astype(np.float32)[..., None]
    colour = colours[labels % len(COLOURS)][:, None, None, :]
    background = rng.uniform(0.0, 1.0, size=(n, 1, 1, 3)).astype(np.float32)
    image = mask * colour + (1 - mask) * background
    image += rng.normal(0, 0.08, size=image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def generated_long_tail(config, name: str, classnames: list[str], render_split) -> LongTailData:
    """A generated data set from `config` (num_classes, max_per_class, imbalance_ratio, test_per_class, seed,
    epochs and the HeldOutValidation options): CIFAR-LT training counts, a balanced test split, images from
    `render_split(labels, split)`, called for "train", then "test", and a validation split held out of the
    training split when asked for."""
    key = f"{name}/k{config.num_classes}-n{config.max_per_class}-ir{config.imbalance_ratio:g}-s{config.seed}"
    counts = cifar_lt_counts(config.max_per_class, config.num_classes, config.imbalance_ratio)
    splits = {}
    for split, per_class in (("train", counts), ("test", config.test_per_class)):
        labels = np.repeat(np.arange(config.num_classes), per_class)
        splits[split] = ArrayImages(render_split(labels, split), labels, f"{key}/{split}")
    return config.with_validation(LongTailData(name=name, classnames=classnames, **splits))


@register_dataset("synthetic_lt")
@dataclass(frozen=True)
class SyntheticLT(HeldOutValidation, UntestedClasses):
    """20 classes (colour x pattern), CIFAR-LT profile from `max_per_class` down by `imbalance_ratio`."""

    num_classes: int = setting(20, low=2, high=len(COLOURS) * len(PATTERNS), help="classes, head first")
    max_per_class: int = setting(200, low=1, high=MAX_SIZE, help="training images of the largest class")
    imbalance_ratio: float = setting(100.0, low=1, help="largest over smallest class (exponential profile)")
    test_per_class: int = setting(20, low=1, high=MAX_SIZE, help="balanced test images per class")
    image_size: int = setting(32, low=8, high=MAX_SIDE, help="side of the generated images in pixels")
    seed: int = setting(0, low=0, high=2**63 - 1, help="seed of the generated images (the split)")
    epochs: int = setting(5, low=1, high=MAX_EPOCHS, help="epochs of a regime whose recipe leaves them unset")

    def __post_init__(self):
        check_fields(self)

    def build(self, data_root: Path, download: bool) -> LongTailData:
        names = [f"{colour} {pattern}" for pattern in PATTERNS for colour in COLOURS][: self.num_classes]
        rng = np.random.default_rng(self.seed)  # one stream: train, then test
        return generated_long_tail(self, "synthetic_lt", names,
                                   lambda labels, split: render(labels, rng, self.image_size))
