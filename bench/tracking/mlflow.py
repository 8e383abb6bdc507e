"""MLflow: one run per job in the experiment named after the run folder, in a local file store by default."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.messages import first_line

from .base import TRACKERS, TrackerError, TrackingOptions, missing_package

JOB_TAG, RUN_DIR_TAG = "ltbench.job_id", "ltbench.run_dir"
END_STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch


def tracking_uri(options: TrackingOptions, run_dir: Path) -> str:
    """--mlflow-uri, else MLFLOW_TRACKING_URI, else the file store <run folder>/mlruns."""
    return options.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()


def _client(options: TrackingOptions, run_dir: Path):
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(options, run_dir)
    if uri.startswith("file:") or "://" not in uri:  # MLflow 3 refuses its file store unless allowed
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


@TRACKERS.register("mlflow")
class MlflowTracker:
    """The config as params, steps and epochs as metrics, the final metrics at the last step. A resumed job
    continues its unfinished run (same job and run folder, not ended) and skips the steps it already logged."""

    def __init__(self, options: TrackingOptions, run_dir: Path):
        self.options = options
        self.run_dir = run_dir
        self.experiment = options.mlflow_experiment or run_dir.resolve().name
        self.logged_through = -1  # the last step the run holds
        self.last_step = 0

    @classmethod
    def check(cls, options: TrackingOptions, run_dir: Path) -> None:
        """The package is there and the store opens; the experiment is created here, once, not by racing jobs."""
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise missing_package("mlflow", "mlflow-skinny", "mlflow") from None
        try:
            _experiment_id(_client(options, run_dir), options.mlflow_experiment or run_dir.resolve().name)
        except Exception as exc:
            raise TrackerError(f"--log mlflow cannot use the tracking store {tracking_uri(options, run_dir)}: "
                               f"{type(exc).__name__}: {first_line(str(exc))} (give a "
                               f"reachable one with --mlflow-uri)") from None

    def start(self, job, config: dict[str, Any]) -> None:
        self.client = _client(self.options, self.run_dir)
        experiment_id = _experiment_id(self.client, self.experiment)
        run_dir = str(self.run_dir.resolve())
        unfinished = [run for run in self.client.search_runs(
            [experiment_id], f"tags.`{JOB_TAG}` = '{job.job_id}' and tags.`{RUN_DIR_TAG}` = '{run_dir}'")
            if run.info.status in ("RUNNING", "KILLED")]
        if unfinished:
            self.run_id = unfinished[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "step/loss")
            self.logged_through = max((m.step for m in history), default=-1)
            return
        tags = {"mlflow.runName": f"{job.label} {job.job_id}", JOB_TAG: job.job_id, RUN_DIR_TAG: run_dir}
        self.run_id = self.client.create_run(experiment_id, tags=tags).info.run_id
        self._params(config)

    def _params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit of params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log(self, step: int, values: dict[str, float]) -> None:
        self.last_step = max(self.last_step, step)
        if step > self.logged_through:
            self._metrics(step, values)

    def _metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, value, now, step) for key, value in values.items()]
        for start in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start:start + MAX_BATCH])

    def finish(self, status: str, metrics: dict[str, float], params: dict[str, Any]) -> None:
        self._params(params)
        self._metrics(self.last_step, metrics)
        self.client.set_terminated(self.run_id, END_STATUS[status])
