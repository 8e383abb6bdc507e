"""Fine-tuning regimes by name; importing this package registers them all."""
from . import full, linear_probe, zero_shot  # noqa: F401  (registration)
from .base import REGIMES, Regime, get_regime, register_regime

__all__ = ["REGIMES", "Regime", "get_regime", "register_regime"]
