"""`JobTrackers`: every chosen tracker of one job, called together by the training loop and the engine."""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Optional

from .base import TRACKERS, Tracker, TrackerError, TrackingOptions, flat_params


def check_trackers(options: TrackingOptions, run_dir: str | Path) -> None:
    """Before training: every chosen tracker can run, and no tracker's option is given without it."""
    for setting, tracker in options.given_without_tracker():
        option = "--" + setting.replace("_", "-")
        raise TrackerError(f"{option} sets up the {tracker} tracker, which this run does not use: "
                           f"add --log {tracker} or drop {option}")
    for name in options.trackers:
        TRACKERS.get(name).check(options, Path(run_dir))


def _is_scalar(value) -> bool:
    """A number a tracker can plot (not a list, None or a flag)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def final_metrics(metrics: dict) -> dict[str, float]:
    """The job JSON's scalar metrics per split, as "test/top1", "val/few", "train/mean_class_acc", ...; a
    metric without a value (an empty group) is left out, never logged as 0."""
    return {f"{split}/{key}": float(value) for split, values in metrics.items() for key, value in values.items()
            if _is_scalar(value)}


class JobTrackers:
    """The fan-out: one run per job in each tracker. Steps are global (epoch × steps per epoch + step); an
    epoch's record is logged at its last step, so a resumed job's curves go on where its checkpoint left them."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def start(self, job) -> None:
        config = flat_params({"job_id": job.job_id, "label": job.label, **job.config()})
        for tracker in self.trackers:
            tracker.start(job, config)

    def _log(self, step: int, values: dict[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log(step, values)

    def log_step(self, step: int, loss: float, lr: float, images_per_s: float) -> None:
        self._log(step, {"step/loss": loss, "step/lr": lr, "step/images_per_s": images_per_s})

    def log_epoch(self, step: int, record: dict) -> None:
        """An epoch's record (bench.training.loop.fit) at its last global step."""
        self._log(step, {f"epoch/{key}": float(value) for key, value in record.items() if _is_scalar(value)})

    def finish(self, status: str, metrics: Optional[dict] = None, resolved: Optional[dict] = None) -> None:
        """End every run: `status` ok, failed or interrupted; the job JSON's metrics and the recipe sizes the
        regime resolved (logged as resolved.FIELD hyper-parameters beside the planned ones)."""
        scalars = final_metrics(metrics or {})
        params = flat_params({"resolved": resolved or {}})
        for tracker in self.trackers:
            tracker.finish(status, scalars, params)


def open_trackers(job) -> Optional[JobTrackers]:
    """The job's trackers, started; None when it has none or no run folder (nothing is then called)."""
    options = job.runtime.tracking
    if not options.trackers or not job.runtime.run_dir:
        return None
    trackers = JobTrackers([TRACKERS.get(name)(options, Path(job.runtime.run_dir)) for name in options.trackers])
    trackers.start(job)
    return trackers
