"""Jobs, recipes, losses and the training engine."""
from .job import Job, Runtime
from .recipe import Recipe

__all__ = ["Job", "Recipe", "Runtime"]
