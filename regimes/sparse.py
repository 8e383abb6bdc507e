from dataclasses import dataclass
from typing import Literal, Optional

from torch.nn.utils import parametrize

from bench.models.tunable_block import tunable_blocks
from bench.models.tuners import MaskedUpdate, random_mask
from bench.fields import setting
from bench.training.recipe import Recipe

from .base import Regime, register_regime


@dataclass(frozen=True)
class SparseRecipe(Recipe):
    fraction: Optional[float] = setting(None, low=0, low_open=True, high=1,
                                        help="trainable share of the entries; None: K·D in all (a classifier's worth)")
    location: Literal["all", "attn", "mlp"] = "all"
    mask_seed: int = setting(0, low=0, high=2**63 - 1)


def _targets(block, location: str) -> list[tuple[object, str]]:
    attn = [(block.attn, "in_proj_weight"), (block.attn, "in_proj_bias"),
            (block.attn.out_proj, "weight"), (block.attn.out_proj, "bias")]
    mlp = [(block.mlp.c_fc, "weight"), (block.mlp.c_fc, "bias"), (block.mlp.c_proj, "weight"),
           (block.mlp.c_proj, "bias")]
    return {"attn": attn, "mlp": mlp, "all": attn + mlp}[location]


@register_regime("sparse")
class SparseFineTuning(Regime):
    """A fixed random fraction of the entries of every attention/MLP weight and bias trains (LIFT-plus's
    "arbitrary fine-tuning"); each tensor's mask comes from a generator seeded with `mask_seed`."""

    summary = "random fraction of block weight entries + classifier"
    recipe = SparseRecipe()

    def adapt(self, model, data, recipe):
        blocks = tunable_blocks(model.visual)
        targets = [t for block in blocks for t in _targets(block, recipe.location)]
        eligible = sum(getattr(module, name).numel() for module, name in targets)
        fraction = recipe.fraction or data.num_classes * blocks[0].width / eligible
        for module, name in targets:
            original = getattr(module, name)
            mask = random_mask(original.shape, fraction, recipe.mask_seed)
            if mask.any():
                parametrize.register_parametrization(module, name, MaskedUpdate(original, mask))
