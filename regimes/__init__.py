"""Fine-tuning regimes by name; importing this package registers them all into bench.registry.REGIMES."""
from . import (adapter, adaptformer, bitfit, clip_adapter, coop, full, lift_plus, linear_probe,  # noqa: F401
               ln_tuning, lora, partial, proj_tuning, sparse, ssf, vpt, zero_shot)
from bench.registry import REGIMES, get_regime

from .base import Regime, register_regime

__all__ = ["REGIMES", "Regime", "get_regime", "register_regime"]
