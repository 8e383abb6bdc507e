from .base import BlockRegime, register_regime


@register_regime("bitfit")
class BitFit(BlockRegime):
    """Every bias in the tuned transformer blocks (LayerNorm, qkv, out-proj, MLP) + classifier."""

    summary = "block biases + classifier"
    runs_on_resnet = True  # a ResNet's residual blocks: their BatchNorm biases (the convolutions have none)

    def adapt(self, model, data, recipe):
        for block in self.tuned_blocks(recipe, self.tower(recipe, model), sites=False):
            for name, param in block.named_parameters():
                if name.endswith("bias"):
                    param.requires_grad_(True)
