from dataclasses import replace

from bench.models import ZeroShotHead
from bench.models.backbone import needs_text_tower
from bench.models.towers import has_text_tower
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@register_regime("zero_shot")
class ZeroShot(Regime):
    """CLIP zero-shot with the prompt 'a photo of a {}.': nothing trains."""

    summary = "no training; cosine to the class prompts' text embeddings"
    recipe = replace(Recipe(), epochs=0)
    trains = False
    lightweight = False
    runs_on_resnet = True

    def check(self, recipe, backbone):
        if not has_text_tower(backbone.visual):
            raise ValueError(needs_text_tower("zero_shot", backbone.name, "use a CLIP model (such as ViT-B-16 or RN50)"))

    def needs_text_embeddings(self, recipe):
        return True

    def uses_text_tower(self, recipe):
        return False  # the frozen class-prompt embeddings are all it needs, whatever `classifier` says

    def make_head(self, backbone, data, recipe):
        return ZeroShotHead(backbone.image_projection, backbone.text_embeddings, backbone.logit_scale)
