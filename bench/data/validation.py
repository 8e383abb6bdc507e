"""Validation splits for honest model selection: a seeded held-out part of the training set.

Data sets whose official validation list is their test set (CIFAR-100-LT, iNaturalist 2018) or that have none
(the generated sets) hold out, per class, a fraction of the training images. The held-out images leave the
training split, so class counts and many/medium/few groups come from the reduced training split; every class
keeps at least one training image. The choice depends only on the training split and `val_seed`, and it is in
the split fingerprint. With the default `val_fraction=0` nothing is held out and the data set is exactly what
it was without this option.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bench.fields import setting

from .base import ArrayImages, DataError, FileImages, LongTailData

ROUNDING = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floating point: a fraction of 30 images is 3, not 4


def held_out_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Ascending indices of ceil(fraction · n_c) images of every class c (at most n_c − 1, so that the class
    keeps a training image), drawn at random from `seed`; none when `fraction` is 0."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = min(math.ceil(fraction * len(idx) - ROUNDING), len(idx) - 1)
        chosen.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def split_off(train: ArrayImages | FileImages, fraction: float, seed: int
              ) -> tuple[ArrayImages | FileImages, ArrayImages | FileImages]:
    """(the training split without the held-out images, the held-out images), each in training-split order."""
    held = held_out_indices(train.labels, fraction, seed)
    kept = np.setdiff1d(np.arange(len(train)), held)
    return train.take(kept), train.take(held)


@dataclass(frozen=True)
class HeldOutValidation:
    """Options of a data set that can hold out part of its training split as its validation split."""

    val_fraction: float = setting(0.0, low=0, high=1, high_open=True,
                                  help="share of each class's training images held out as the validation split "
                                       "(at least 1, at most all but 1 per class; 0: no validation split)")
    val_seed: int = setting(0, low=0, high=2**32 - 1, help="seed choosing the held-out validation images")

    @property
    def has_validation(self) -> bool:
        """Whether the built data set will have a validation split (known before any data is read)."""
        return self.val_fraction > 0

    def validation_hint(self, scope: str) -> str:
        """How to ask this data set for a validation split, for a message that needs one."""
        return f"--set {scope}.val_fraction=0.1 (hold out 10% of each class's training images)"

    def with_validation(self, data: LongTailData) -> LongTailData:
        """`data` with its held-out validation split (unchanged when val_fraction is 0)."""
        if not self.val_fraction:
            return data
        if data.val is not None:
            raise DataError(f"{data.name}: its validation split file and val_fraction={self.val_fraction:g} both ask "
                            f"for a validation split; set one of them (val_fraction=0, or val_list='')")
        train, val = split_off(data.train, self.val_fraction, self.val_seed)
        return replace(data, train=train, val=val)
