"""The training recipe of a regime: LIFT+'s defaults, every field overridable with `--set REGIME.FIELD=VALUE`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from bench.fields import MAX_EPOCHS, check_fields, setting


@dataclass(frozen=True)
class Recipe:
    epochs: Optional[int] = setting(None, low=0, high=MAX_EPOCHS,
                                    help="None: the data set's default (5; 15 for iNaturalist 2018)")
    lr: float = setting(0.02, low=0, low_open=True)
    batch_size: int = setting(128, low=1)
    momentum: float = setting(0.9, low=0, high=1, high_open=True)
    weight_decay: float = setting(5e-4, low=0)
    loss: Literal["la", "ce"] = "la"  # logit-adjusted CE(z + tau log pi) or plain CE
    la_tau: float = setting(1.0, low=0)
    classifier: Literal["cosine", "linear"] = "cosine"
    classifier_scale: float = setting(25.0, low=0, low_open=True, help="sigma of the cosine classifier")
    classifier_init: Literal["semantic", "random"] = "semantic"
    augmentation: Literal["minimalist", "rrc_flip", "rrc_flip_bilinear", "none"] = "minimalist"
    tte: bool = False  # 5-crop test-time ensembling

    def __post_init__(self):
        check_fields(self)
