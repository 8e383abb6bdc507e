"""Image checks before training: every listed file is there (and decodes), and a fingerprint of the data itself."""
from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, NoReturn

import numpy as np
from tqdm import tqdm

from .base import ArrayImages, DataError, FileImages, ImageSource, LongTailData
from .images import ImageModeError, open_rgb

CHUNK = 256  # files per thread task: big enough to amortise the task overhead, small enough for a live bar
DRAFT_SIZE = (64, 64)  # JPEGs decode at 1/8 scale: still every byte of the entropy stream, far fewer pixels
CORRUPT = "corrupt or truncated image"
UNSUPPORTED_MODE = "image mode without an 8-bit RGB reading"


class FileState(NamedTuple):
    size: int
    mtime_ns: int
    problem: str = ""  # "" when the file is fine
    detail: str = ""


class Problem(NamedTuple):
    split: FileImages
    index: int
    state: FileState


def _inspect(path: str, decode: bool) -> FileState:
    """Stat `path` (following links) and, with `decode`, decode it fully; never raises."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileState(-1, -1, "image not found")
    except OSError as exc:
        return FileState(-1, -1, "cannot stat image", exc.strerror or str(exc))
    if not stat.S_ISREG(info.st_mode):
        return FileState(info.st_size, info.st_mtime_ns, "not a regular file")
    if info.st_size == 0:
        return FileState(0, info.st_mtime_ns, "empty (0-byte) image")
    if decode:
        try:
            open_rgb(path, draft=DRAFT_SIZE)
        except ImageModeError as exc:
            return FileState(info.st_size, info.st_mtime_ns, UNSUPPORTED_MODE, str(exc))
        except Exception as exc:  # PIL raises several types for corrupt and truncated files
            return FileState(info.st_size, info.st_mtime_ns, CORRUPT, str(exc))
    return FileState(info.st_size, info.st_mtime_ns)


def _inspect_chunk(paths: list[str], decode: bool) -> list[FileState]:
    return [_inspect(path, decode) for path in paths]


def _inspect_split(split: FileImages, name: str, pool: ThreadPoolExecutor, decode: bool,
                   progress: bool) -> list[FileState]:
    """The state of every listed file, in list order whatever the number of threads."""
    root = str(split.root)
    paths = [os.path.join(root, rel) for rel in split.rel_paths]
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    states: list[FileState] = []
    with tqdm(total=len(paths), desc=f"{'decoding' if decode else 'checking'} {name} images", unit="img",
              disable=not progress, dynamic_ncols=True) as bar:
        for chunk_states in pool.map(_inspect_chunk, chunks, [decode] * len(chunks)):
            states.extend(chunk_states)
            bar.update(len(chunk_states))
    return states


def _raise_first(problems: list[Problem], what: str, fix: str) -> NoReturn:
    """One error for all bad files: the first with its split file and line, then how many more per split file."""
    split, index, state = problems[0]
    path = os.path.join(split.root, split.rel_paths[index])
    message = f"{state.problem}: {path} (listed in {split.list_file}, line {split.line_numbers[index]})"
    message += f": {state.detail}" if state.detail else ""
    if len(problems) > 1:
        per_file = Counter(str(problem.split.list_file) for problem in problems[1:])
        counts = ", ".join(f"{n} in {list_file}" for list_file, n in per_file.items())
        message += f"; {len(problems) - 1} more listed images are {what} ({counts})"
    raise DataError(f"{message}. {fix}")


IMAGE_ROOT_SETTING = {  # data sets whose image root is not set by `image_dir` (bench.data.user_data)
    "folder": ("path", "DIR", "the folder holding train_dir and test_dir"),
    "csv": ("image_dir", "DIR", "the base of the CSV's relative image paths; without it, the CSV's folder"),
}


def image_root_hint(dataset: str) -> str:
    """The --set that moves `dataset`'s image root: `path` for `folder`, `image_dir` for the others."""
    field, value, meaning = IMAGE_ROOT_SETTING.get(dataset, ("image_dir", "DIR", ""))
    return f"--set {dataset}.{field}={value}" + (f", {meaning}" if meaning else "")


def summary_line(summary: dict) -> str:
    """One line for a data set's `LongTailData.summary()`: sizes, the range of images per class and the group
    sizes; never the class names or the per-class counts (8,142 of each for iNaturalist 2018)."""
    val = summary.get("val_size")
    groups = summary.get("groups") or {}
    return (f"data {summary['name']}: {summary['num_classes']:,} classes, {summary['train_size']:,} train / "
            f"{summary['test_size']:,} test" + (f" / {val:,} val" if val else "") + " images, "
            f"{summary['min_count']:,}–{summary['max_count']:,} per class"
            + (", groups " + "/".join(f"{k} {v:,}" for k, v in groups.items()) if groups else "")
            + (f", fingerprint {str(summary['fingerprint'])[:12]}" if summary.get("fingerprint") else ""))


def _array_digest(split: ArrayImages) -> bytes:
    images = np.ascontiguousarray(split.images)
    digest = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    digest.update(memoryview(images).cast("B"))
    return digest.digest()


def _files_digest(split: FileImages, states: list[FileState]) -> bytes:
    digest = hashlib.sha256("\n".join(split.rel_paths).encode())
    digest.update(np.array([s.size for s in states], dtype="<i8").tobytes())
    digest.update(np.array([s.mtime_ns for s in states], dtype="<i8").tobytes())
    return digest.digest()


def check_images(data: LongTailData, *, decode: bool = False, progress: bool = False, threads: int = 32) -> str:
    """Fail before any training if a listed image is missing, empty or not a file (with `decode`, also corrupt or
    truncated), and return the data fingerprint: SHA-256 of the split fingerprint and the images under it (each
    file's path, size and mtime; in-memory images' bytes), so results can tell when the images changed."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    splits: dict[str, ImageSource] = data.splits
    digest = hashlib.sha256(data.fingerprint.encode())
    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for name, split in splits.items():
            digest.update(f"[{name}]".encode())
            if isinstance(split, FileImages):
                states = _inspect_split(split, name, pool, decode, progress)
                problems += [Problem(split, i, state) for i, state in enumerate(states) if state.problem]
                digest.update(_files_digest(split, states))
            elif isinstance(split, ArrayImages):
                digest.update(_array_digest(split))
            else:
                raise TypeError(f"check_images cannot check a {type(split).__name__} split")
    unreadable = [problem for problem in problems if problem.state.problem not in (CORRUPT, UNSUPPORTED_MODE)]
    if unreadable:
        _raise_first(unreadable, "missing, empty or not regular files",
                     f"Check the image root (--data-root, or {image_root_hint(data.name)}) or restore the files")
    corrupt = [problem for problem in problems if problem.state.problem == CORRUPT]
    if corrupt:
        _raise_first(corrupt, "corrupt or truncated",
                     "Replace the listed files with intact copies from the original download")
    if problems:
        _raise_first(problems, "in modes without an 8-bit RGB reading",
                     "Save them as 8-bit RGB or 8/16-bit greyscale (README: image modes)")
    return digest.hexdigest()
