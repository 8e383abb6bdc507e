"""Jobs, recipes, losses and the training engine."""
from .job import Derivation, Job, Runtime
from .recipe import Recipe

__all__ = ["Derivation", "Job", "Recipe", "Runtime"]
