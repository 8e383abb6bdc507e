"""Running jobs: in this process, on local devices in parallel (joblib), or as Ray tasks on a cluster."""
from .devices import device_slots
from .execute import execute
from .local import run_local

__all__ = ["device_slots", "execute", "run_local"]
