from dataclasses import replace

from bench.models import ZeroShotHead
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@register_regime("zero_shot")
class ZeroShot(Regime):
    """CLIP zero-shot with the prompt 'a photo of a {}.': nothing trains."""

    summary = "no training; cosine to the class prompts' text embeddings"
    recipe = replace(Recipe(), epochs=0)
    trains = False
    lightweight = False

    def make_head(self, backbone, data, recipe):
        return ZeroShotHead(backbone.visual.proj, backbone.text_embeddings, backbone.logit_scale)
