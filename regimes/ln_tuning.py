from torch import nn

from .base import Regime, register_regime


@register_regime("ln_tuning")
class LayerNormTuning(Regime):
    """The affine weights and biases of every LayerNorm in the transformer blocks (ln_1, ln_2) + classifier."""

    summary = "block LayerNorms + classifier"

    def adapt(self, model, data, recipe):
        for module in model.visual.transformer.resblocks.modules():
            if isinstance(module, nn.LayerNorm):
                module.requires_grad_(True)
