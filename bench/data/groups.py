"""The many/medium/few-shot groups of the papers, by training images per class: defined here and only here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MANY_MIN = 100  # many-shot: more than 100 training images
FEW_MAX = 20  # few-shot: fewer than 20; medium is 20..100 inclusive
GROUP_NAMES = ("many", "medium", "few")
GROUP_RULES = {"many": f"> {MANY_MIN}", "medium": f"{FEW_MAX}–{MANY_MIN}", "few": f"< {FEW_MAX}"}  # for captions


@dataclass(frozen=True)
class ClassGroups:
    many: np.ndarray
    medium: np.ndarray
    few: np.ndarray

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> "ClassGroups":
        counts = np.asarray(counts)
        return cls(
            many=np.flatnonzero(counts > MANY_MIN),
            medium=np.flatnonzero((counts >= FEW_MAX) & (counts <= MANY_MIN)),
            few=np.flatnonzero(counts < FEW_MAX),
        )

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in GROUP_NAMES}
