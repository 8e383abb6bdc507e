"""The tracker interface, its registry and options: what every experiment-tracker backend implements."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from bench.registry import Registry


class TrackerError(ValueError):
    """A tracker that cannot run as asked (a missing package, no credentials, an option without its tracker):
    found before training, said in one line with the fix."""


@dataclass(frozen=True)
class TrackingOptions:
    """Which trackers log each job, and their settings. A setting belongs to the tracker its name starts with
    (`wandb_project` to wandb); None means not given, so one given without its tracker can be refused."""

    trackers: tuple[str, ...] = ()  # registered names (TRACKERS), in the order given
    wandb_project: Optional[str] = None  # None: "ltbench"
    wandb_group: Optional[str] = None  # None: the run folder's name
    wandb_offline: Optional[bool] = None  # None/False: WANDB_MODE decides (online by default)
    mlflow_uri: Optional[str] = None  # None: MLFLOW_TRACKING_URI, else the file store <run folder>/mlruns
    mlflow_experiment: Optional[str] = None  # None: the run folder's name

    def given_without_tracker(self) -> list[tuple[str, str]]:
        """(setting, tracker) for each setting given while its tracker is off."""
        return [(f.name, f.name.split("_")[0]) for f in dataclasses.fields(self)
                if f.name != "trackers" and getattr(self, f.name) not in (None, False)
                and f.name.split("_")[0] not in self.trackers]


class Tracker(Protocol):
    """One job's run in an experiment tracker. `start` opens it (resuming the job's unfinished run, without
    logging its steps again), `log` writes scalars at a global step, `finish` ends it with the job's status
    ("ok", "failed" or "interrupted"), its final metrics and the hyper-parameters learned late."""

    def __init__(self, options: TrackingOptions, run_dir: Path) -> None: ...

    @classmethod
    def check(cls, options: TrackingOptions, run_dir: Path) -> None:
        """Raise TrackerError before training when this tracker cannot run (its package, credentials, store)."""

    def start(self, job, config: dict[str, Any]) -> None: ...

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, status: str, metrics: dict[str, float], params: dict[str, Any]) -> None: ...


TRACKERS: Registry[type[Tracker]] = Registry("tracker", plugins="bench.tracking")  # its __init__ imports the backends


def missing_package(name: str, package: str, extra: str) -> TrackerError:
    return TrackerError(f"--log {name} needs the {package} package: pip install -e '.[{extra}]' "
                        f"(or pip install {package})")


def flat_params(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as {"recipe.lr": 0.01, ...}: numbers, text and booleans as they are, None as "None",
    lists as JSON, so every tracker can store every value."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{name}."))
        elif value is None:
            flat[name] = "None"
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat
