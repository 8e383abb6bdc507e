"""Writing files that readers can trust: atomic replacement, storage errors that name the fix, JSON without NaN."""
from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from pathlib import Path

STORAGE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                  errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
                  errno.EEXIST: "a part of the path is a file, not a folder"}


class StorageError(OSError):
    """The run folder cannot be written (full disk, read-only, no permission); the message names the folder."""


def _storage_cause(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (torch.save wraps a full disk as 'enforce fail at inline_container.cc')."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def storage_error(path: Path, exc: BaseException) -> StorageError | None:
    cause = _storage_cause(exc)
    if cause is None:
        return None
    return StorageError(cause.errno, f"cannot write {path}: {STORAGE_ERRORS[cause.errno]} ({cause.strerror}); "
                                     f"free space or fix the permissions of {Path(path).parent}, or choose "
                                     f"another --out")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb"):
    """Write to a temporary file in the same folder, fsync, then rename: readers see the old file or the new one,
    never a half-written one, whenever the writer is killed. A full disk or a folder that cannot be written
    raises StorageError naming the folder."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        translated = storage_error(path, exc) if not isinstance(exc, StorageError) else None
        if translated is not None:
            raise translated from exc
        raise


def write_atomic(path: Path, text: str) -> None:
    with atomic_file(path, "w") as fh:
        fh.write(text)


def json_safe(value):
    """`value` with every NaN or infinite float written as a string ("nan", "inf", "-inf"): JSON has no such
    numbers, and a failure record (a NaN loss, lr=inf) must always be saved."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
