from dataclasses import replace

from .base import BlockRegime, LayersRecipe, register_regime


@register_regime("full")
class FullFineTuning(BlockRegime):
    """Every tensor of the tuned (by default all) transformer blocks + classifier; embeddings, ln_pre, ln_post
    and proj stay frozen."""

    summary = "all transformer blocks + classifier"
    lightweight = False
    runs_on_resnet = True  # a ResNet's blocks: the residual blocks of layer1..4 (not the stem, not the pool)
    recipe = replace(LayersRecipe(), lr=5e-4)  # the papers' full fine-tuning lr

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model), sites=False):
            block.requires_grad_(True)
