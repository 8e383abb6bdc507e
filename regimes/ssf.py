from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import ScaleShift

from .base import Regime, register_regime


@register_regime("ssf")
class SSF(Regime):
    """Scale-and-shift after the qkv, attention-out, MLP-in and MLP-out projections of every block."""

    summary = "scale-shift after each projection + classifier"

    def adapt(self, model, data, recipe):
        for block in tunable_blocks(model.visual):
            width = block.width
            for name, dim in (("ssf_qkv", 3 * width), ("ssf_attn_out", width),
                              ("ssf_fc", block.mlp.c_fc.out_features), ("ssf_mlp_out", width)):
                block.tuners[name] = ScaleShift(dim)
