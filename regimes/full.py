from dataclasses import replace

from bench.training.recipe import Recipe

from .base import Regime, register_regime


@register_regime("full")
class FullFineTuning(Regime):
    """Every tensor of all transformer blocks + classifier; embeddings, ln_pre, ln_post and proj stay frozen."""

    summary = "all transformer blocks + classifier"
    lightweight = False
    recipe = replace(Recipe(), lr=5e-4)  # the papers' full fine-tuning lr

    def adapt(self, model, data, recipe):
        model.visual.transformer.resblocks.requires_grad_(True)
