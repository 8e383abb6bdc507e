from torch import nn

from .base import BlockRegime, register_regime


@register_regime("ln_tuning")
class LayerNormTuning(BlockRegime):
    """The affine weights and biases of every LayerNorm in the tuned transformer blocks (ln_1, ln_2) + classifier."""

    summary = "block LayerNorms + classifier"

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model), sites=False):
            for module in block.modules():
                if isinstance(module, nn.LayerNorm):
                    module.requires_grad_(True)
