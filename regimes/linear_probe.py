from .base import Regime, register_regime


@register_regime("linear_probe")
class LinearProbe(Regime):
    """Classifier only (K·D): cosine classifier with semantic init on the frozen feature."""

    summary = "classifier only"
    lightweight = False
    runs_on_resnet = True
