"""Your own data: an ImageFolder-style tree (`folder`) or a CSV list (`csv`), optionally cut to a long tail.

Both give `FileImages` splits, so the checks before training (missing or unreadable images, a class without
training images, the fingerprints) are those of the built-in sets. With `imbalance_ratio` set, each class of
the training set keeps the CIFAR-LT share of the largest class count, chosen with a seed (see `long_tail_cut`).
"""
from __future__ import annotations

import csv
import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fields import MAX_EPOCHS, check_fields, setting

from .base import DataError, FileImages, LongTailData, shown
from .cifar import cifar_lt_counts, long_tail_indices
from .options import ImagesInsideRoot, UntestedClasses
from .registry import register_dataset
from .split_files import read_classnames_txt, read_utf8
from .validation import HeldOutValidation

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # compared lower-case
SPLITS = ("train", "test")
CSV_COLUMNS = ("path", "label", "split")


def long_tail_cut(train: FileImages, counts: np.ndarray, imbalance_ratio: float, seed: int) -> FileImages:
    """The CIFAR-LT profile cut from `train`: class i (label order, K classes, n_max its largest class count)
    keeps min(its count, max(1, int(n_max·(1/IR)^(i/(K−1))))) images, chosen per class by CIFAR-100-LT's
    seeded shuffle; every class keeps at least one image and the kept ones stay in listing order."""
    targets = [max(1, n) for n in cifar_lt_counts(int(counts.max()), len(counts), imbalance_ratio)]
    keep = np.sort(long_tail_indices(train.labels, targets, seed))
    return FileImages(train.root, [train.rel_paths[i] for i in keep], train.labels[keep], train.list_file,
                      [train.line_numbers[i] for i in keep])


def at_least_two(classnames: list[str], source: Path) -> list[str]:
    """One class is nothing to classify (and the long-tail profile divides by K−1): refuse it at the source."""
    if len(classnames) < 2:
        raise DataError(f"{source}: {len(classnames)} class(es) found; a classifier needs at least two")
    return classnames


@dataclass(frozen=True)
class UserDataset(HeldOutValidation, UntestedClasses, ABC):
    """Shared by `folder` and `csv`: where the data is, the optional long-tail cut, the epochs, and a held-out
    validation split (cut from the long-tail training split, so that it follows the same profile)."""

    path: str = setting("", help="where the data is, relative to --data-root unless absolute (required)")
    imbalance_ratio: float | None = setting(
        None, low=1, help="None: the training set as it is; else its CIFAR-LT cut, largest class count / ratio at "
                          "the tail")
    subsample_seed: int = setting(0, low=0, high=2**32 - 1, help="numpy seed choosing the images the cut keeps")
    epochs: int = setting(5, low=1, high=MAX_EPOCHS, help="epochs of a regime whose recipe leaves them unset")

    name = ""

    def __post_init__(self):
        check_fields(self)

    def given(self, data_root: Path, field: str, placeholder: str) -> Path:
        """The path in `field` under --data-root; there is no standard place for your own data, so an unset
        one is an error saying how to set it."""
        value = getattr(self, field)
        if not value:
            raise DataError(f"{self.name}: no {field} given; set --set {self.name}.{field}={placeholder}")
        return data_root / value

    @abstractmethod
    def read(self, data_root: Path) -> tuple[list[str], FileImages, FileImages]:
        """The class names and the train and test splits as given."""

    def build(self, data_root: Path, download: bool) -> LongTailData:
        """The data as given (--download has nothing to fetch here), cut to the long tail with imbalance_ratio."""
        classnames, train, test = self.read(data_root)
        for split, images in (("train", train), ("test", test)):
            if not len(images):
                raise DataError(f"{self.name}: no {split} images in {images.list_file}")
        data = LongTailData(self.name, classnames, train, test)  # refuses a class with no training image
        if self.imbalance_ratio is not None:
            cut = long_tail_cut(train, data.train_class_counts, self.imbalance_ratio, self.subsample_seed)
            data = LongTailData(self.name, classnames, cut, test)
        return self.with_validation(data)


def visible_entries(folder: Path) -> list[Path]:
    """The entries of `folder` by name, less hidden ones (.DS_Store, .ipynb_checkpoints)."""
    return sorted((entry for entry in folder.iterdir() if not entry.name.startswith(".")), key=lambda e: e.name)


def class_folders(split_dir: Path) -> list[Path]:
    """The class folders of a split folder by name; loose files beside them (a README) are not classes."""
    return [entry for entry in visible_entries(split_dir) if entry.is_dir()]


def image_names(class_dir: Path) -> list[str]:
    """The image files directly in a class folder; a subfolder is refused, as its images would be left out."""
    entries = visible_entries(class_dir)
    subfolders = [entry.name for entry in entries if entry.is_dir()]
    if subfolders:
        raise DataError(f"{class_dir} holds the subfolder(s) {shown(subfolders)}: images must lie directly in "
                        f"their class folder; move them up, or hide the subfolder by starting its name with '.'")
    return [entry.name for entry in entries if entry.suffix.lower() in IMAGE_SUFFIXES]


def list_images(split_dir: Path, classes: list[str]) -> FileImages:
    """Every image of each class folder, class by class; errors about an image name the split folder and the
    image's position in this listing (in place of a split file's line)."""
    rel_paths, labels = [], []
    for label, name in enumerate(classes):
        found = image_names(split_dir / name) if (split_dir / name).is_dir() else []  # see check_same_classes
        rel_paths += [f"{name}/{file}" for file in found]
        labels += [label] * len(found)
    return FileImages(split_dir, rel_paths, np.asarray(labels, dtype=np.int64), split_dir,
                      list(range(1, len(rel_paths) + 1)))


def check_same_classes(train_dir: Path, classes: list[str], test_dir: Path, untested_allowed: bool) -> None:
    """A class only in train is never tested (unless `untested_allowed`: then it is reported as untested) and
    one only in test is never learnt: both folders must match."""
    test_classes = [entry.name for entry in class_folders(test_dir)]
    only_train = [] if untested_allowed else [name for name in classes if name not in test_classes]
    only_test = [name for name in test_classes if name not in classes]
    problems = [f"only in {folder}: {shown(names)}" for folder, names in ((train_dir, only_train),
                                                                          (test_dir, only_test)) if names]
    if problems:
        allow = " (or --set folder.allow_untested_classes=true to run without testing the classes only in train)"
        raise DataError(f"folder: the train and test folders must hold the same class folders; {'; '.join(problems)}"
                        + (allow if only_train else ""))


def check_no_empty_class(train: FileImages, classes: list[str]) -> None:
    """An empty class folder fails every job later; name it and the suffixes read here."""
    empty = [name for name, n in zip(classes, np.bincount(train.labels, minlength=len(classes))) if n == 0]
    if empty:
        raise DataError(f"folder: {len(empty)} class folder(s) in {train.root} hold no image "
                        f"({', '.join(IMAGE_SUFFIXES)}): {shown(empty)}; add images or delete the folder")


@register_dataset("folder")
@dataclass(frozen=True)
class FolderData(UserDataset):
    """ImageFolder layout: path/train/<class>/<image> and path/test/<class>/<image>. The classes are the train
    class folders in sorted order, their folder names the class names of the prompts."""

    path: str = setting("", help="folder holding train_dir and test_dir, relative to --data-root unless absolute "
                                 "(required)")
    train_dir: str = setting("train", help="training folder in path: one folder of images per class")
    test_dir: str = setting("test", help="test folder in path: the same class folders as train_dir")

    name = "folder"

    def split_dirs(self, data_root: Path) -> tuple[Path, Path]:
        root = self.given(data_root, "path", "DIR")
        return root / self.train_dir, root / self.test_dir

    def source_files(self, data_root: Path) -> list[Path]:
        """The split folders and their class folders: adding, deleting or renaming an image changes the
        modification time of its class folder, so the next build reads the folders again."""
        split_dirs = self.split_dirs(data_root)
        return [*split_dirs, *(d for split in split_dirs if split.is_dir() for d in class_folders(split))]

    def read(self, data_root: Path) -> tuple[list[str], FileImages, FileImages]:
        root = self.given(data_root, "path", "DIR")
        train_dir, test_dir = self.split_dirs(data_root)
        for field, folder in (("path", root), ("train_dir", train_dir), ("test_dir", test_dir)):
            if not folder.is_dir():
                raise DataError(f"folder: {field} not found: {folder}; expected {train_dir}/<class>/<image> and "
                                f"{test_dir}/<class>/<image> (set them with --set folder.path=DIR, "
                                f"folder.train_dir=NAME, folder.test_dir=NAME)")
        if train_dir.resolve() == test_dir.resolve():
            raise DataError(f"folder: train_dir and test_dir are the same folder {train_dir}; testing on the "
                            f"training images measures nothing")
        classes = at_least_two([entry.name for entry in class_folders(train_dir)], train_dir)
        check_same_classes(train_dir, classes, test_dir, self.allow_untested_classes)
        train = list_images(train_dir, classes)
        check_no_empty_class(train, classes)
        return classes, train, list_images(test_dir, classes)


def csv_columns(header: list[str], path: Path) -> dict[str, int]:
    """Where path, label and split are; the split column is required, since no test set is made up here."""
    names = [name.strip().lower() for name in header]
    missing = [column for column in CSV_COLUMNS if column not in names]
    if missing == ["split"]:
        raise DataError(f"{path}, line 1: no split column: a test split is required; add a column 'split' "
                        f"saying 'train' or 'test' on every row")
    if missing:
        raise DataError(f"{path}, line 1: expected the header row {','.join(CSV_COLUMNS)}, got {','.join(header)!r}")
    return {column: names.index(column) for column in CSV_COLUMNS}


def csv_row(record: list[str], columns: dict[str, int], width: int, num_classes: int, where: str,
            classnames_file: Path) -> tuple[str, int, str]:
    """(path, label, split) of one row, or a DataError saying what is wrong with it."""
    if len(record) != width:
        raise DataError(f"{where}: expected {width} fields as in the header row, got {len(record)}: {record!r}")
    rel, label, split = (record[columns[column]].strip() for column in CSV_COLUMNS)
    if not rel:
        raise DataError(f"{where}: empty path")
    if not label.lstrip("-").isdigit():
        raise DataError(f"{where}: expected an integer label, got {label!r}")
    if not 0 <= int(label) < num_classes:
        raise DataError(f"{where}: label {label} outside 0..{num_classes - 1} ({num_classes} classes in "
                        f"{classnames_file})")
    if split.lower() not in SPLITS:
        raise DataError(f"{where}: split {split!r} is neither 'train' nor 'test'")
    return rel, int(label), split.lower()


def parse_csv(path: Path, image_root: Path, num_classes: int, classnames_file: Path) -> dict[str, FileImages]:
    """The train and test splits of a `path,label,split` CSV (csv quoting, so paths may hold commas); blank rows
    are skipped, a path listed twice or in both splits (an image in both leaks test answers into training) is an
    error naming both lines."""
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    rows: dict[str, tuple[list[str], list[int], list[int]]] = {split: ([], [], []) for split in SPLITS}
    first: dict[str, tuple[int, str]] = {}  # normalised path -> (line, split)
    columns, width, start = None, 0, 1
    try:
        for record in reader:
            lineno, start = start, reader.line_num + 1  # a quoted field may span lines: report the first
            if not any(field.strip() for field in record):
                continue
            if columns is None:
                columns, width = csv_columns(record, path), len(record)
                continue
            rel, label, split = csv_row(record, columns, width, num_classes, f"{path}, line {lineno}",
                                        classnames_file)
            key = os.path.normpath(rel)
            if key in first:
                line, other = first[key]
                problem = "is listed twice" if other == split else "is in both the train and the test split"
                raise DataError(f"{path}, lines {line} and {lineno}: {rel!r} {problem}; delete one of the two lines")
            first[key] = (lineno, split)
            rel_paths, labels, lines = rows[split]
            rel_paths.append(rel)
            labels.append(label)
            lines.append(lineno)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from exc
    if columns is None:
        raise DataError(f"{path} is empty; expected the header row {','.join(CSV_COLUMNS)} and a row per image")
    return {split: FileImages(image_root, rel_paths, np.asarray(labels, dtype=np.int64), path, lines)
            for split, (rel_paths, labels, lines) in rows.items()}


@register_dataset("csv")
@dataclass(frozen=True)
class CsvData(UserDataset, ImagesInsideRoot):
    """A CSV file with the header row path,label,split (any column order, other columns ignored): image path,
    integer label indexing the class-name file, and train or test."""

    path: str = setting("", help="CSV file with the header row path,label,split, relative to --data-root unless "
                                 "absolute (required)")
    classnames_file: str = setting("", help="class names, one per line in label order, relative to --data-root "
                                            "unless absolute (required)")
    image_dir: str = setting("", help="base of the CSV's relative image paths, relative to --data-root unless "
                                      "absolute (default: the CSV's folder)")

    name = "csv"

    def source_files(self, data_root: Path) -> list[Path]:
        """The CSV and the class names: a change to either means a new build."""
        return [self.given(data_root, "path", "FILE"), self.given(data_root, "classnames_file", "FILE")]

    def read(self, data_root: Path) -> tuple[list[str], FileImages, FileImages]:
        csv_file, classnames_file = self.source_files(data_root)
        classnames = at_least_two(read_classnames_txt(classnames_file), classnames_file)
        image_root = data_root / self.image_dir if self.image_dir else csv_file.parent
        splits = parse_csv(csv_file, image_root, len(classnames), classnames_file)
        return classnames, self.inside_root(splits["train"], self.name), self.inside_root(splits["test"], self.name)
