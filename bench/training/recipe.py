"""The training recipe of a regime: LIFT+'s defaults, every field overridable with `--set REGIME.FIELD=VALUE`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass(frozen=True)
class Recipe:
    epochs: Optional[int] = None  # None: the data set's default (5; 15 for iNaturalist 2018)
    lr: float = 0.02
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss: Literal["la", "ce"] = "la"  # logit-adjusted CE(z + tau log pi) or plain CE
    la_tau: float = 1.0
    classifier: Literal["cosine", "linear"] = "cosine"
    classifier_scale: float = 25.0  # sigma of the cosine classifier
    classifier_init: Literal["semantic", "random"] = "semantic"
    augmentation: Literal["minimalist", "rrc_flip", "none"] = "minimalist"
    tte: bool = False  # 5-crop test-time ensembling
