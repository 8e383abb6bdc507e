"""CIFAR-100-LT built from the CIFAR-100 python pickles exactly as the LIFT/LIFT+ references do."""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import ArrayImages, DataError, LongTailData
from .registry import register_dataset

CIFAR_FOLDER = "cifar-100-python"


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


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except Exception as exc:
        raise DataError(f"cannot read CIFAR-100 file {path}: {exc}; delete it and rerun with --download") from exc


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    entry = _read_pickle(folder / split)
    try:
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(entry["fine_labels"], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{folder / split} is not a CIFAR-100 python pickle ('data', 'fine_labels'): {exc}") from exc
    return np.ascontiguousarray(data), labels


@register_dataset("cifar100_lt")
@dataclass(frozen=True)
class Cifar100LT:
    """CIFAR-100-LT: long-tail train split of CIFAR-100 train, balanced 10,000-image test set."""

    imbalance_ratio: float = 100.0
    folder: str = ""  # data root by default; it must contain cifar-100-python/
    split_seed: int = 0
    epochs: int = 5

    def build(self, data_root: Path, download: bool) -> LongTailData:
        root = Path(self.folder) if self.folder else data_root
        folder = root / CIFAR_FOLDER
        if download:
            import torchvision

            torchvision.datasets.CIFAR100(str(root), train=True, download=True)
        missing = [name for name in ("train", "test", "meta") if not (folder / name).is_file()]
        if missing:
            raise DataError(
                f"CIFAR-100 not found: expected the python pickles {', '.join(missing)} in {folder}. "
                f"Pass --download to fetch them with torchvision, or point --data-root at the folder "
                f"that contains {CIFAR_FOLDER}/."
            )
        train_images, train_labels = _read_split(folder, "train")
        test_images, test_labels = _read_split(folder, "test")
        classnames = list(_read_pickle(folder / "meta")["fine_label_names"])
        num_classes = len(classnames)
        per_class = len(train_labels) // num_classes
        keep = long_tail_indices(train_labels, cifar_lt_counts(per_class, num_classes, self.imbalance_ratio),
                                 self.split_seed)
        ir = f"{self.imbalance_ratio:g}"
        return LongTailData(
            name=f"cifar100_lt_ir{ir}",
            classnames=classnames,
            train=ArrayImages(train_images[keep], train_labels[keep], "cifar100-train", indices=keep),
            test=ArrayImages(test_images, test_labels, "cifar100-test"),
            default_epochs=self.epochs,
            info={"imbalance_ratio": self.imbalance_ratio},
        )


@register_dataset("cifar100_lt_ir50")
@dataclass(frozen=True)
class Cifar100LTIR50(Cifar100LT):
    imbalance_ratio: float = 50.0


@register_dataset("cifar100_lt_ir10")
@dataclass(frozen=True)
class Cifar100LTIR10(Cifar100LT):
    imbalance_ratio: float = 10.0
