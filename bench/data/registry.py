"""Data set registry: `@register_dataset("name")` on a dataclass config with `build(data_root, download)`."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.overrides import apply_overrides
from bench.registry import Registry

from .base import LongTailData

DATASETS: Registry[type] = Registry("dataset")
register_dataset = DATASETS.register


def dataset_config(name: str, overrides: dict[str, str] | None = None) -> Any:
    """The typed config of data set `name` with `--set name.field=value` overrides applied."""
    config = DATASETS.get(name)()
    return apply_overrides(config, overrides or {}, name)


@lru_cache(maxsize=8)
def _build_cached(config: Any, data_root: str, download: bool, stamp: tuple) -> LongTailData:
    return config.build(Path(data_root), download)


def _stamp(config: Any, data_root: Path) -> tuple:
    """(path, size, mtime) of each file the build reads: an edited split file is never served from the cache."""
    files = config.source_files(data_root) if hasattr(config, "source_files") else []
    stamps = []
    for path in files:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            stamps.append((str(path), None, None))
    return tuple(stamps)


def build_dataset(config: Any, data_root: str | Path, download: bool = False) -> LongTailData:
    """Build (once per process for a given config, root and state of its files) the long-tail data set
    described by `config`."""
    root = Path(data_root).expanduser()
    return _build_cached(config, str(root), download, _stamp(config, root))
