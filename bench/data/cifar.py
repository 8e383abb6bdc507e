"""CIFAR-100-LT built from the CIFAR-100 python pickles exactly as the LIFT/LIFT+ references do."""
from __future__ import annotations

import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bench.fields import MAX_EPOCHS, check_fields, setting
from bench.messages import first_line

from .base import ArrayImages, DataError, LongTailData, name_classes
from .options import UntestedClasses
from .registry import register_dataset
from .validation import HeldOutValidation

CIFAR_FOLDER = "cifar-100-python"
DOWNLOAD_TIMEOUT_S = 60.0  # a download that receives nothing for this long fails (urllib would wait forever)


def cifar_lt_counts(num_per_class: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """n_i = int(n_max * IF^(i/(K-1))) with IF = 1/IR, in the original class order."""
    factor = 1.0 / imbalance_ratio
    return [int(num_per_class * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def long_tail_indices(labels: np.ndarray, counts: list[int], seed: int = 0) -> np.ndarray:
    """Reference selection: seed numpy's global RNG once, then per class shuffle its indices, keep the first n_i."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        chosen = []
        for cls, n in zip(np.unique(labels), counts):
            idx = np.where(labels == cls)[0]
            np.random.shuffle(idx)
            chosen.append(idx[:n])
    finally:
        np.random.set_state(state)
    return np.concatenate(chosen)


# The only globals a CIFAR-100 pickle needs: numpy's array and dtype reconstruction (the genuine python-2 files
# write `numpy.core.multiarray._reconstruct`; numpy 2 writes `numpy._core`; pickle protocol 5 uses `_frombuffer`).
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


def _refetch(folder: Path) -> str:
    return f"delete the folder {folder} and rerun with --download to fetch CIFAR-100 again"


def _download(root: Path) -> None:
    """torchvision's download of CIFAR-100 into `root` (skipped when the files there are intact); any failure
    (offline, unreachable, stalled, a damaged archive, a folder that cannot be written) is one DataError that
    says how to place the files by hand."""
    import torchvision

    source = torchvision.datasets.CIFAR100
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        source(str(root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - urllib, tarfile, checksum and file errors: each is this one line
        raise DataError(
            f"--download: cannot fetch CIFAR-100 from {source.url} into {root} ({type(exc).__name__}: "
            f"{first_line(str(exc))}). To place the files by hand (without network access, say), download "
            f"{source.url} elsewhere and unpack it into {root} (tar xzf {source.filename} -C {root}), so that "
            f"{root / CIFAR_FOLDER} holds train, test and meta; then run without --download") from None
    finally:
        socket.setdefaulttimeout(previous)


class CifarUnpickler(pickle.Unpickler):
    """Refuses every global outside ALLOWED_GLOBALS, so a crafted file cannot run code (plain pickle would)."""

    def __init__(self, fh: BinaryIO, path: Path):
        super().__init__(fh, encoding="latin1")  # the genuine files are python-2 pickles
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(f"{self.path} asks to load the global {module}.{name}, which no CIFAR-100 pickle holds; "
                            f"refused (a crafted pickle runs code this way). {_refetch(self.path.parent)}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return CifarUnpickler(fh, path).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read CIFAR-100 file {path}: {exc}; {_refetch(path.parent)}") from exc


def _read_classnames(folder: Path) -> list[str]:
    path = folder / "meta"
    meta = _read_pickle(path)
    names = meta.get("fine_label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path} holds no 'fine_label_names' list of class names; {_refetch(folder)}")
    return names


def _fits_uint8(data: np.ndarray) -> bool:
    if data.dtype == np.uint8:
        return True
    return data.dtype.kind in "iu" and (data.size == 0 or (data.min() >= 0 and data.max() <= 255))


def _read_split(folder: Path, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """N×32×32×3 images and N labels in 0..num_classes-1; a damaged file fails here, not as dropped labels later."""
    path = folder / split
    entry = _read_pickle(path)
    try:
        data, labels = np.asarray(entry["data"]), np.asarray(entry["fine_labels"])
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise DataError(f"{path} is not a CIFAR-100 python pickle ('data', 'fine_labels'): {exc!r}; "
                        f"{_refetch(folder)}") from exc
    if data.ndim != 2 or data.shape[1] != 3072 or not _fits_uint8(data):
        raise DataError(f"{path}: 'data' must be N×3072 pixel values in 0..255, got {data.dtype} {data.shape}; "
                        f"{_refetch(folder)}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: 'fine_labels' must hold {len(data)} integer labels (one per image in 'data'), "
                        f"got {labels.dtype} {labels.shape}; {_refetch(folder)}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        more = f" ({len(bad) - 1} more labels are out of range)" if len(bad) > 1 else ""
        raise DataError(f"{path}: image {bad[0]} has label {labels[bad[0]]}, outside 0..{num_classes - 1} "
                        f"({num_classes} classes in {folder / 'meta'}){more}; {_refetch(folder)}")
    images = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64, copy=False)


def _check_every_class(folder: Path, labels: np.ndarray, classnames: list[str]) -> None:
    """The long-tail selection pairs the i-th present class with count n_i: a missing class shifts every count."""
    missing = np.flatnonzero(np.bincount(labels, minlength=len(classnames)) == 0)
    if len(missing):
        raise DataError(f"{folder / 'train'}: {len(missing)} of {len(classnames)} classes have no image: "
                        f"{name_classes(missing, classnames)}; {_refetch(folder)}")


@register_dataset("cifar100_lt")
@dataclass(frozen=True)
class Cifar100LT(HeldOutValidation, UntestedClasses):
    """CIFAR-100-LT: long-tail train split of CIFAR-100 train, balanced 10,000-image test set (the official
    validation set is the test set: a validation split is held out of the training split, see val_fraction)."""

    imbalance_ratio: float = setting(100.0, low=1, help="largest over smallest class (500 / ratio images at the tail)")
    folder: str = setting("", help="folder holding cifar-100-python/ (default: --data-root)")
    split_seed: int = setting(0, low=0, high=2**32 - 1, help="numpy seed choosing the kept images, as the references")
    epochs: int = setting(5, low=1, high=MAX_EPOCHS, help="epochs of a regime whose recipe leaves them unset")

    def __post_init__(self):
        check_fields(self)

    def source_files(self, data_root: Path) -> list[Path]:
        """The pickles a build reads: a change to one of them means a new build."""
        folder = (Path(self.folder) if self.folder else data_root) / CIFAR_FOLDER
        return [folder / name for name in ("train", "test", "meta")]

    def build(self, data_root: Path, download: bool) -> LongTailData:
        root = Path(self.folder) if self.folder else data_root
        folder = root / CIFAR_FOLDER
        if download:
            _download(root)
        missing = [name for name in ("train", "test", "meta") if not (folder / name).is_file()]
        if missing:
            raise DataError(
                f"CIFAR-100 not found: expected the python pickles {', '.join(missing)} in {folder}. "
                f"Pass --download to fetch them with torchvision, or point --data-root at the folder "
                f"that contains {CIFAR_FOLDER}/."
            )
        classnames = _read_classnames(folder)
        num_classes = len(classnames)
        train_images, train_labels = _read_split(folder, "train", num_classes)
        _check_every_class(folder, train_labels, classnames)
        test_images, test_labels = _read_split(folder, "test", num_classes)
        per_class = len(train_labels) // num_classes
        keep = long_tail_indices(train_labels, cifar_lt_counts(per_class, num_classes, self.imbalance_ratio),
                                 self.split_seed)
        ir = f"{self.imbalance_ratio:g}"
        return self.with_validation(LongTailData(
            name=f"cifar100_lt_ir{ir}",
            classnames=classnames,
            train=ArrayImages(train_images[keep], train_labels[keep], "cifar100-train", indices=keep),
            test=ArrayImages(test_images, test_labels, "cifar100-test"),
        ))


@register_dataset("cifar100_lt_ir50")
@dataclass(frozen=True)
class Cifar100LTIR50(Cifar100LT):
    imbalance_ratio: float = setting(50.0, low=1)
    named_by = ("imbalance_ratio",)


@register_dataset("cifar100_lt_ir10")
@dataclass(frozen=True)
class Cifar100LTIR10(Cifar100LT):
    imbalance_ratio: float = setting(10.0, low=1)
    named_by = ("imbalance_ratio",)
