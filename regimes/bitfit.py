from .base import Regime, register_regime


@register_regime("bitfit")
class BitFit(Regime):
    """Every bias in the transformer blocks (LayerNorm, qkv, out-proj, MLP) + classifier."""

    summary = "block biases + classifier"

    def adapt(self, model, data, recipe):
        for name, param in model.visual.transformer.resblocks.named_parameters():
            if name.endswith("bias"):
                param.requires_grad_(True)
