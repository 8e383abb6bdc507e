"""Data set registry: `@register_dataset("name")` on a dataclass config with `build(data_root, download)`."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.overrides import apply_overrides
from bench.registry import Registry

from .base import LongTailData
from .options import check_tested

DATASETS: Registry[type] = Registry("dataset")
register_dataset = DATASETS.register


def dataset_config(name: str, overrides: dict[str, str] | None = None) -> Any:
    """The typed config of data set `name` with `--set name.field=value` overrides applied."""
    config = DATASETS.get(name)()
    return apply_overrides(config, overrides or {}, name)


def registered_name(kind: type) -> str:
    """The name the data-set config class `kind` is registered under: the scope of its --set options."""
    return next((name for name in DATASETS.names() if DATASETS.get(name) is kind), kind.__name__)


@lru_cache(maxsize=8)
def _build_cached(config: Any, data_root: str, download: bool, stamp: tuple) -> LongTailData:
    data = config.build(Path(data_root), download)
    check_tested(data, registered_name(type(config)), getattr(config, "allow_untested_classes", False))
    return data


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
    described by `config`; a class without test or validation images is refused unless the config allows it."""
    root = Path(data_root).expanduser()
    return _build_cached(config, str(root), download, _stamp(config, root))
