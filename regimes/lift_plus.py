from .adaptformer import AdaptFormer, AdaptFormerRecipe
from .base import register_regime


@register_regime("lift_plus")
class LiftPlus(AdaptFormer):
    """LIFT+: AdaptFormer (lift variant) + cosine classifier σ=25 with semantic init + logit-adjusted loss τ=1
    + minimalist augmentation + 5-crop test-time ensembling, 5 epochs (15 on iNaturalist 2018)."""

    summary = "LIFT+: AdaptFormer + semantic init + LA loss + minimalist augmentation + TTE"
    recipe = AdaptFormerRecipe(tte=True)
