from dataclasses import replace

from bench.models.towers import Tower
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@register_regime("proj_tuning")
class ProjectionTuning(Regime):
    """The image and text projections into CLIP's joint space train (LIFT-plus's proj_tuning); the text encoder
    classifies."""

    summary = "image and text projections; the text encoder classifies"
    recipe = replace(Recipe(), classifier="text")
    text_side = "trains the image and text projections"

    def tunes_image_tower(self, recipe):
        return False  # the image projection is copied into the head: the tower itself stays frozen

    def check(self, recipe, backbone):
        super().check(recipe, backbone)
        if isinstance(backbone.visual, Tower):
            raise ValueError(f"proj_tuning: {backbone.name}'s image tower has no projection (a CLIP ResNet's "
                             f"attention pool projects itself); use clip_adapter or coop")

    def adapt(self, model, data, recipe):
        model.head.image_projection.requires_grad_(True)
        model.text.text_projection.requires_grad_(True)
