"""Per-epoch checkpoints of a job's trainable state, so that a killed long job resumes where it stopped."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from bench.io import atomic_file

log = logging.getLogger(__name__)


class EpochCheckpoint:
    """Only the trainable tensors, optimiser, schedule and history are stored: the frozen rest is rebuilt."""

    def __init__(self, path: Path, job_id: str):
        self.path = Path(path)
        self.job_id = job_id

    def save(self, epochs_done: int, model, optimiser, schedule, scaler, history: list[dict]) -> None:
        state = {
            "job_id": self.job_id,
            "epochs_done": epochs_done,
            "trainable": {name: p.detach().cpu() for name, p in model.trainable_parameters()},
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "history": history,
        }
        with atomic_file(self.path) as fh:
            torch.save(state, fh)

    def restore(self, model, optimiser, schedule, scaler) -> tuple[int, list[dict]]:
        """Load the last checkpoint into the given objects; (0, []) when there is none or it is unusable."""
        if not self.path.is_file():
            return 0, []
        params = dict(model.trainable_parameters())
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state["job_id"] != self.job_id:
                raise ValueError(f"it belongs to job {state['job_id']}")
            if {n: tuple(t.shape) for n, t in state["trainable"].items()} != \
                    {n: tuple(p.shape) for n, p in params.items()}:
                raise ValueError("its trainable tensors differ from this job's")
        except Exception as exc:  # unreadable or foreign: checked before anything is loaded
            log.warning("ignoring checkpoint %s (%s); training from the start", self.path, exc)
            return 0, []
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        if scaler and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        log.info("resuming %s after epoch %d from %s", self.job_id, state["epochs_done"], self.path)
        return state["epochs_done"], state["history"]
