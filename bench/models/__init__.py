"""Backbones (open_clip) and classifier heads."""
from .backbone import (TINY_MODEL, Backbone, WeightsUnavailableError, create_clip, image_features,
                       load_backbone)
from .heads import CosineClassifier, LinearClassifier, LongTailModel, ZeroShotHead, make_classifier

__all__ = ["TINY_MODEL", "Backbone", "WeightsUnavailableError", "create_clip", "image_features", "load_backbone",
           "CosineClassifier", "LinearClassifier", "LongTailModel", "ZeroShotHead", "make_classifier"]
