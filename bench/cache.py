"""Values computed once per key and shared by every job and process of a run (text embeddings, frozen
features): one file per key, written atomically, with a file lock so concurrent jobs compute it only once."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock

from bench.io import atomic_file

log = logging.getLogger(__name__)


class DiskCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return self.root / f"{key.get('kind', 'value')}-{digest}.pt"

    def get_or_compute(self, key: dict, compute: Callable[[], Any]) -> Any:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                try:
                    stored = torch.load(path, map_location="cpu", weights_only=True)
                    if stored.get("key") == json.loads(json.dumps(key, default=str)):
                        return stored["value"]
                except Exception as exc:  # a corrupt cache file is recomputed, never trusted
                    log.warning("cache file %s unreadable (%s); recomputing", path, exc)
            value = compute()
            with atomic_file(path) as fh:
                torch.save({"key": json.loads(json.dumps(key, default=str)), "value": value}, fh)
            return value
