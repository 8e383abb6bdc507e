"""Weights & Biases: one run per job, grouped by run folder; offline when asked (--wandb-offline, WANDB_MODE)."""
from __future__ import annotations

import hashlib
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .base import TRACKERS, TrackerError, TrackingOptions, missing_package

DEFAULT_PROJECT = "ltbench"
EXIT_CODE = {"ok": 0, "failed": 1, "interrupted": 130}


def wandb_mode(options: TrackingOptions) -> str:
    """offline with --wandb-offline, else WANDB_MODE's (online, offline or disabled), online by default."""
    return "offline" if options.wandb_offline else os.environ.get("WANDB_MODE", "online")


def _has_api_key() -> bool:
    """WANDB_API_KEY, or a ~/.netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


@TRACKERS.register("wandb")
class WandbTracker:
    """The config as the run's config, steps and epochs in its history, the final metrics in its summary. The
    run's id is the job's (and the run folder's), so a resumed job continues its run (online: W&B drops no
    step, and ltbench logs none twice)."""

    def __init__(self, options: TrackingOptions, run_dir: Path):
        self.options = options
        self.run_dir = run_dir.resolve()
        self.next_step = 0

    @classmethod
    def check(cls, options: TrackingOptions, run_dir: Path) -> None:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise missing_package("wandb", "wandb", "wandb") from None
        mode = wandb_mode(options)
        if mode not in ("online", "offline", "disabled", "dryrun", "run"):
            raise TrackerError(f"WANDB_MODE={mode} is not a W&B mode: use online, offline or disabled")
        if mode in ("online", "run") and not _has_api_key():
            raise TrackerError("--log wandb has no W&B API key: run `wandb login` or set WANDB_API_KEY, or log "
                               "offline with --wandb-offline (or WANDB_MODE=offline) and `wandb sync` later")

    def start(self, job, config: dict[str, Any]) -> None:
        import wandb

        where = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:8]
        self.run = wandb.init(
            project=self.options.wandb_project or DEFAULT_PROJECT, group=self.options.wandb_group or self.run_dir.name,
            name=job.label, id=f"{job.job_id}-{where}", resume="allow", reinit="create_new", config=config,
            dir=str(self.run_dir), mode=wandb_mode(self.options), tags=[job.regime, job.dataset],
            settings=wandb.Settings(console="off", silent=True))
        self.next_step = self.run.step if self.run.resumed else 0

    def log(self, step: int, values: dict[str, float]) -> None:
        if step >= self.next_step:
            self.run.log(values, step=step)

    def finish(self, status: str, metrics: dict[str, float], params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)
        self.run.summary.update({**metrics, "status": status})
        self.run.finish(exit_code=EXIT_CODE[status])
