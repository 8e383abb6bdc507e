"""Backbones (open_clip) and classifier heads."""
from .backbone import (TINY_MODEL, Backbone, WeightsUnavailableError, activation_of, create_clip, image_features,
                       load_backbone, uses_quick_gelu)
from .heads import CosineClassifier, LinearClassifier, LongTailModel, ZeroShotHead, make_classifier

__all__ = ["TINY_MODEL", "Backbone", "WeightsUnavailableError", "activation_of", "create_clip", "image_features",
           "load_backbone", "uses_quick_gelu", "CosineClassifier", "LinearClassifier", "LongTailModel",
           "ZeroShotHead", "make_classifier"]
