"""Experiment trackers (`--log tensorboard wandb mlflow`): each job's curves, final metrics and config."""
from .base import TRACKERS, Tracker, TrackerError, TrackingOptions, flat_params
from .fanout import JobTrackers, check_trackers, final_metrics, open_trackers
from . import mlflow, tensorboard, wandb  # noqa: F401  (they register themselves)

__all__ = ["TRACKERS", "JobTrackers", "Tracker", "TrackerError", "TrackingOptions", "check_trackers",
           "final_metrics", "flat_params", "open_trackers"]
