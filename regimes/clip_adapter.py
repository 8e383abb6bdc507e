from dataclasses import dataclass, replace

from bench.fields import MAX_SIZE, setting
from bench.models.tunable_block import Residual
from bench.training.recipe import Recipe

from .adapter import BottleneckAdapter
from .base import Regime, register_regime


@dataclass(frozen=True)
class CLIPAdapterRecipe(Recipe):
    bottleneck: int = setting(4, low=1, high=MAX_SIZE,
                              help="hidden size of each adapter (LIFT-plus's clip_adapter_dim)")


@register_regime("clip_adapter")
class CLIPAdapter(Regime):
    """CLIP-Adapter as LIFT-plus runs it: a bottleneck adapter (own LayerNorm, ReLU, zero up projection) on the
    projected image embedding and one on the projected class-prompt embeddings, each added residually with no
    ratio (e ← e + A(e)); the text encoder classifies."""

    summary = "adapters on both projected embeddings; the text encoder classifies"
    recipe = replace(CLIPAdapterRecipe(), classifier="text")
    runs_on_resnet = True  # it acts on the embeddings, which a CLIP ResNet has too
    text_side = "adapts the image and text embeddings"

    def tunes_image_tower(self, recipe):
        return False

    def adapt(self, model, data, recipe):
        dim = model.head.image_projection.shape[1]
        for site in ("image", "text"):
            model.head.attach(site, Residual(BottleneckAdapter(dim, recipe.bottleneck)))
