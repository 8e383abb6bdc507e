"""ltbench: fine-tuning regimes of CLIP models on long-tail classification, compared on identical splits."""
__version__ = "0.1.0"
