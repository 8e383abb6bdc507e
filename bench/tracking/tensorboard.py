"""TensorBoard: one event-file folder per job, <run folder>/tensorboard/<job id>/ (torch.utils.tensorboard)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import TRACKERS, TrackingOptions, missing_package


@TRACKERS.register("tensorboard")
class TensorBoardTracker:
    """Scalars per step and epoch, and at the end the final metrics with the job's config in the HParams
    dashboard. A job that starts again in its folder (resumed, retried, --force) purges what the folder holds
    from its first step on, so TensorBoard shows each step once."""

    def __init__(self, options: TrackingOptions, run_dir: Path):
        self.options = options
        self.run_dir = run_dir
        self.writer = None
        self.last_step = 0

    @classmethod
    def check(cls, options: TrackingOptions, run_dir: Path) -> None:
        try:
            import torch.utils.tensorboard  # noqa: F401  (it needs the tensorboard package)
        except ImportError:
            raise missing_package("tensorboard", "tensorboard", "tensorboard") from None

    def start(self, job, config: dict[str, Any]) -> None:
        self.folder = self.run_dir / "tensorboard" / job.job_id
        self.config = config

    def _writer(self, first_step: int):
        """The writer, opened at the first thing logged: an earlier attempt's events from `first_step` on are
        purged (TensorBoard's purge_step)."""
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            earlier = self.folder.is_dir() and any(self.folder.glob("events.out.tfevents.*"))
            self.writer = SummaryWriter(str(self.folder), purge_step=first_step if earlier else None)
        return self.writer

    def log(self, step: int, values: dict[str, float]) -> None:
        writer = self._writer(step)
        for name, value in values.items():
            writer.add_scalar(name, value, step)
        self.last_step = step

    def finish(self, status: str, metrics: dict[str, float], params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer(self.last_step)
        hparam_dict = {**self.config, **params, "status": status}
        for summary in hparams(hparam_dict, metrics):
            writer.file_writer.add_summary(summary, self.last_step)
        for name, value in metrics.items():
            writer.add_scalar(name, value, self.last_step)
        writer.close()
        self.writer = None
