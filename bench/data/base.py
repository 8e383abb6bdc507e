"""Long-tail data set container: image sources, class counts, many/medium/few groups, split fingerprint."""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .groups import ClassGroups
from .images import open_rgb

CLASSES_SHOWN = 5  # classes an error message names before "and N more"


class DataError(RuntimeError):
    """Missing, unreadable or malformed data; the message names the file (and line) and the fix."""


def shown(names: Sequence[str]) -> str:
    """`'cat', 'dog' and 3 more`: enough names to find the problem without flooding the message."""
    text = ", ".join(map(repr, names[:CLASSES_SHOWN]))
    return text + (f" and {len(names) - CLASSES_SHOWN} more" if len(names) > CLASSES_SHOWN else "")


def name_classes(indices: Sequence[int], classnames: Sequence[str]) -> str:
    """`3 'dog', 7 'cat' and 12 more`: enough to find the classes without flooding the message."""
    shown = ", ".join(f"{i} {classnames[i]!r}" for i in indices[:CLASSES_SHOWN])
    return shown + (f" and {len(indices) - CLASSES_SHOWN} more" if len(indices) > CLASSES_SHOWN else "")


class ImageSource(ABC):
    """An ordered list of labelled images of one split."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def keys(self) -> Sequence[str]:
        """Stable identifiers of the samples, in order (used for the split fingerprint)."""

    @abstractmethod
    def load(self, index: int) -> Image.Image:
        """The RGB image of sample `index`."""

class ArrayImages(ImageSource):
    """Images held in memory as a uint8 N×H×W×3 array (CIFAR pickles, generated sets)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, key_prefix: str, indices: np.ndarray | None = None):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 N×H×W×3 images, got {images.dtype} {images.shape}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self._indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self._key_prefix = key_prefix

    def keys(self) -> list[str]:
        return [f"{self._key_prefix}:{i}" for i in self._indices]

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])

    def take(self, indices: np.ndarray) -> "ArrayImages":
        """The samples at `indices`, in that order, under their own keys (a held-out split names its images as
        the split it came from does)."""
        return ArrayImages(self.images[indices], self.labels[indices], self._key_prefix, self._indices[indices])


class FileImages(ImageSource):
    """Images on disk listed in a split file; errors name the split file and line."""

    def __init__(self, root: Path, rel_paths: list[str], labels: np.ndarray, list_file: Path, line_numbers: list[int]):
        self.root = Path(root)
        self.rel_paths = rel_paths
        self.labels = np.asarray(labels, dtype=np.int64)
        self.list_file = Path(list_file)
        self.line_numbers = line_numbers

    def keys(self) -> list[str]:
        return self.rel_paths

    def outside_root(self) -> list[int]:
        """Indices of the listed paths that leave the image root: absolute, or climbing out with `..`. Judged on
        the text alone: a symbolic link under the root is the user's own layout (data kept on another disk)."""
        return [i for i, rel in enumerate(self.rel_paths)
                if os.path.isabs(rel) or os.path.normpath(rel).split(os.sep)[0] == os.pardir]

    def load(self, index: int) -> Image.Image:
        path = self.root / self.rel_paths[index]
        where = f"{self.list_file}, line {self.line_numbers[index]}"
        if not path.is_file():
            raise DataError(f"image not found: {path} (listed in {where}); check the image root "
                            f"(--data-root or --set DATASET.image_dir=DIR)")
        try:
            return open_rgb(path)
        except Exception as exc:  # PIL raises several types for corrupt files; ImageModeError for odd modes
            raise DataError(f"cannot read image {path} (listed in {where}): {exc}") from exc

    def take(self, indices: np.ndarray) -> "FileImages":
        """The samples at `indices`, in that order, with their split file lines (for the error messages)."""
        return FileImages(self.root, [self.rel_paths[i] for i in indices], self.labels[indices], self.list_file,
                          [self.line_numbers[i] for i in indices])


@dataclass
class LongTailData:
    """A long-tail training split, a (balanced) test split and, for honest model selection, an optional
    validation split, all sharing one label space."""

    name: str
    classnames: list[str]
    train: ImageSource
    test: ImageSource
    val: ImageSource | None = None

    @property
    def splits(self) -> dict[str, ImageSource]:
        """Every split by name: train, test, and val where there is one."""
        return {"train": self.train, "test": self.test, **({"val": self.val} if self.val is not None else {})}

    def __post_init__(self):
        for split_name, split in self.splits.items():
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= self.num_classes):
                raise DataError(f"{self.name} {split_name} labels fall outside 0..{self.num_classes - 1}")
        self._check_no_empty_class()

    def _check_no_empty_class(self) -> None:
        """A class without training images fails every job later, far from the cause; name it here."""
        empty = np.flatnonzero(self.train_class_counts == 0)
        if not len(empty):
            return
        if isinstance(self.train, FileImages):
            where = f"the train split {self.train.list_file}"
            fix = (f"list at least one training image of each class in {self.train.list_file}, or drop the class "
                   f"from the class names and renumber the labels")
        else:
            where = f"the {self.name} train split"
            fix = "change the data set's options so that every class keeps at least one training image"
        raise DataError(f"{self.name}: {len(empty)} of {self.num_classes} classes have no image in {where}: "
                        f"{name_classes(empty, self.classnames)}; {fix}")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @cached_property
    def train_class_counts(self) -> np.ndarray:
        return np.bincount(self.train.labels, minlength=self.num_classes)

    @cached_property
    def untested_classes(self) -> dict[str, np.ndarray]:
        """Per evaluated split (test, and val where there is one), the classes without an image in it: every
        metric of that split leaves them out, so they are refused unless the data set allows them
        (bench.data.options), and then reported."""
        return {name: np.flatnonzero(np.bincount(split.labels, minlength=self.num_classes) == 0)
                for name, split in self.splits.items() if name != "train"}

    @cached_property
    def groups(self) -> ClassGroups:
        return ClassGroups.from_counts(self.train_class_counts)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the ordered (key, label) lists of every split: equal fingerprints mean identical splits
        (a data set without validation split hashes exactly what it did before there were any)."""
        digest = hashlib.sha256()
        for split_name, split in self.splits.items():
            digest.update(f"[{split_name}:{len(split)}]".encode())
            digest.update("\n".join(split.keys()).encode())
            digest.update(np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
        return digest.hexdigest()

    def summary(self) -> dict:
        counts = self.train_class_counts
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "val_size": None if self.val is None else len(self.val),
            "max_count": int(counts.max()),
            "min_count": int(counts.min()),
            "groups": {k: len(v) for k, v in self.groups.as_dict().items()},
            "fingerprint": self.fingerprint,
            "train_class_counts": counts.tolist(),
            "classnames": list(self.classnames),
            "untested_classes": {split: [self.classnames[i] for i in classes]
                                 for split, classes in self.untested_classes.items()},
        }
