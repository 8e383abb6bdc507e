"""The training recipe of a regime: LIFT+'s defaults, every field overridable with `--set REGIME.FIELD=VALUE`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from bench.fields import MAX_EPOCHS, check_fields, setting


@dataclass(frozen=True)
class Recipe:
    epochs: Optional[int] = setting(None, low=0, high=MAX_EPOCHS,
                                    help="None: the data set's default (5; 15 for iNaturalist 2018)")
    lr: float = setting(0.02, low=0, low_open=True, help="SGD learning rate, cosine-annealed per epoch")
    batch_size: int = setting(128, low=1, help="images per optimiser step (--micro-batch-size splits it exactly)")
    momentum: float = setting(0.9, low=0, high=1, high_open=True, help="SGD momentum")
    weight_decay: float = setting(5e-4, low=0, help="SGD weight decay")
    loss: Literal["la", "ce"] = setting("la", help="la: logit-adjusted cross-entropy CE(z + tau·log prior); ce: plain")
    la_tau: float = setting(1.0, low=0, help="tau of the logit adjustment")
    classifier: Literal["cosine", "linear"] = setting("cosine", help="the head on the image features")
    classifier_scale: float = setting(25.0, low=0, low_open=True, help="sigma of the cosine classifier")
    classifier_init: Literal["semantic", "random"] = setting(
        "semantic", help="semantic: the class prompts' text embeddings (LIFT+); random")
    augmentation: Literal["minimalist", "rrc_flip", "rrc_flip_bilinear", "none"] = setting(
        "minimalist", help="training transform; none: deterministic (a frozen tower then trains on cached features)")
    tte: bool = setting(False, help="5-crop test-time ensembling (LIFT+)")

    def __post_init__(self):
        check_fields(self)
