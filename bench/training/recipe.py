"""The training recipe of a regime: LIFT+'s defaults, every field overridable with `--set REGIME.FIELD=VALUE`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from bench.fields import MAX_BATCH, MAX_EPOCHS, MAX_SIDE, check_fields, setting
from bench.registry import LOSSES


@dataclass(frozen=True)
class Recipe:
    epochs: Optional[int] = setting(None, low=0, high=MAX_EPOCHS,
                                    help="None: the data set's default (5; 15 for iNaturalist 2018)")
    lr: float = setting(0.02, low=0, low_open=True, help="SGD learning rate, cosine-annealed per epoch")
    batch_size: int = setting(128, low=1, high=MAX_BATCH,
                              help="images per optimiser step (--micro-batch-size splits it exactly)")
    momentum: float = setting(0.9, low=0, high=1, high_open=True, help="SGD momentum")
    weight_decay: float = setting(5e-4, low=0, help="SGD weight decay")
    loss: str = setting(
        "la", help="la: logit-adjusted CE(z + tau·log prior); ce; focal; ldam; cb: class-balanced; grw: generalized "
                   "re-weighting; bs: balanced softmax; lade; or a loss a --plugin registers")
    la_tau: float = setting(1.0, low=0, help="tau of the logit adjustment")
    focal_gamma: float = setting(2.0, low=0, help="gamma of the focal loss")
    ldam_max_margin: float = setting(0.5, low=0, help="largest LDAM margin (the rarest class); s is classifier_scale")
    cb_beta: float = setting(0.9999, low=0, high=1, high_open=True, help="beta of the class-balanced weights")
    grw_exponent: float = setting(1.0, low=0, help="exponent of the generalized re-weighting 1/pi^e")
    lade_lambda: float = setting(0.1, low=0, help="lambda of LADE's regularised estimator")
    lade_weight: float = setting(0.1, low=0, help="weight of LADE's estimator term")
    classifier: Literal["cosine", "linear", "l2norm", "layernorm", "text"] = setting(
        "cosine", help="the head on the image features; text: the CLIP text encoder on the class prompts, "
                       "100·cos(f W_img, t W_text), run in every step (LIFT-plus's classifier None)")
    classifier_scale: float = setting(25.0, low=0, low_open=True, help="sigma of the cosine classifier")
    classifier_init: Literal["semantic", "random", "class_mean", "linear_probing"] = setting(
        "semantic", help="semantic: the class prompts' text embeddings (LIFT+); class_mean, linear_probing: from "
                         "<=100 training images per class; random")
    augmentation: Literal["minimalist", "rrc_flip", "rrc_flip_bilinear", "none"] = setting(
        "minimalist", help="training transform; none: deterministic (a frozen tower then trains on cached features)")
    mda_func: Literal["convex", "min", "linear", "concave", "max"] = setting(
        "convex", help="schedule of the minimalist crop's smallest area over the epochs")
    tte: bool = setting(False, help="5-crop test-time ensembling (LIFT+)")
    expand: Optional[int] = setting(None, low=0, high=MAX_SIDE, help="test resize = size + expand pixels; None: 24 "
                                                                     "with tte, size // 7 without (LIFT-plus)")
    interpolation: Literal["bicubic", "bilinear"] = setting(
        "bicubic", help="filter of the deterministic resizes: test, TTE and classifier-init images, augmentation "
                        "none (LIFT-plus: bicubic; LIFT: torchvision's default, bilinear)", identity="unless_default")

    def __post_init__(self):
        check_fields(self)
        if self.loss not in LOSSES:  # a registry, not a Literal: plugins add losses (bench.plugins)
            raise ValueError(f"loss {self.loss!r} is not one of {', '.join(LOSSES.names())} (a plugin's loss: "
                             f"load its plugin with --plugin)")
