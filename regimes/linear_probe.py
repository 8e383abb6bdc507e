from .base import Regime, register_regime


@register_regime("linear_probe")
class LinearProbe(Regime):
    """Classifier only (K·D): cosine classifier with semantic init on the frozen feature."""

    summary = "classifier only"
    lightweight = False
    runs_on_resnet = True

    def check(self, recipe, backbone):
        super().check(recipe, backbone)
        if recipe.classifier == "text":
            raise ValueError("linear_probe with classifier=text trains nothing (the text encoder is frozen); use "
                             "zero_shot, or coop, clip_adapter, proj_tuning or a regime with tower=text")
