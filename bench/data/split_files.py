"""ImageNet-LT, Places-LT and iNaturalist 2018 from the standard `<relative path> <label>` split files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DataError, FileImages, LongTailData
from .registry import register_dataset


def parse_split_file(path: Path) -> tuple[list[str], np.ndarray, list[int]]:
    """Read `<relative path> <integer label>` lines; blank lines are skipped, anything else malformed is an error."""
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    rel_paths, labels, line_numbers = [], [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataError(f"{path}, line {lineno}: expected '<relative path> <integer label>', got {text!r}")
            rel_paths.append(parts[0])
            labels.append(int(parts[1]))
            line_numbers.append(lineno)
    if not rel_paths:
        raise DataError(f"split file {path} lists no images")
    return rel_paths, np.asarray(labels, dtype=np.int64), line_numbers


def read_classnames_txt(path: Path) -> list[str]:
    """One class name per line, in label order (ImageNet-LT / Places-LT `classnames.txt`)."""
    if not path.is_file():
        raise DataError(f"class-name file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_inat_categories(path: Path) -> list[str]:
    """Species names from iNaturalist's `categories.json`, indexed by the category `id` used as label."""
    if not path.is_file():
        raise DataError(f"categories file not found: {path}")
    try:
        categories = json.loads(path.read_text(encoding="utf-8"))
        names = {int(c["id"]): str(c["name"]) for c in categories}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not an iNaturalist categories.json (a list of {{id, name, ...}}): {exc}") from exc
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: category ids are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


@dataclass(frozen=True)
class SplitFileDataset:
    """Shared loader; subclasses give the standard folder and file names (all overridable with --set)."""

    image_dir: str = ""  # image root, relative to --data-root unless absolute
    split_dir: str = ""  # folder of the split files, relative to --data-root unless absolute
    train_list: str = "train.txt"
    test_list: str = "test.txt"
    classnames_file: str = "classnames.txt"
    epochs: int = 5

    name = ""

    def read_classnames(self, path: Path) -> list[str]:
        return read_classnames_txt(path)

    def build(self, data_root: Path, download: bool) -> LongTailData:
        if download:
            raise DataError(f"{self.name} cannot be downloaded automatically; see the README for where to get it")
        image_root = data_root / self.image_dir
        split_dir = data_root / self.split_dir
        for field_name, file_name in (("classnames_file", self.classnames_file), ("train_list", self.train_list),
                                      ("test_list", self.test_list)):
            if not (split_dir / file_name).is_file():
                raise DataError(
                    f"{self.name}: {field_name} not found: {split_dir / file_name}. Put the standard split files "
                    f"in {split_dir} or set their location with --set {self.name}.split_dir=DIR "
                    f"(or --set {self.name}.{field_name}=FILE)."
                )
        classnames = self.read_classnames(split_dir / self.classnames_file)
        splits = {}
        for split, list_name in (("train", self.train_list), ("test", self.test_list)):
            list_file = split_dir / list_name
            rel_paths, labels, lines = parse_split_file(list_file)
            bad = np.flatnonzero((labels < 0) | (labels >= len(classnames)))
            if len(bad):
                i = int(bad[0])
                raise DataError(f"{list_file}, line {lines[i]}: label {labels[i]} outside 0..{len(classnames) - 1} "
                                f"({len(classnames)} classes in {split_dir / self.classnames_file})")
            splits[split] = FileImages(image_root, rel_paths, labels, list_file, lines)
        return LongTailData(self.name, classnames, splits["train"], splits["test"], default_epochs=self.epochs)


@register_dataset("imagenet_lt")
@dataclass(frozen=True)
class ImageNetLT(SplitFileDataset):
    image_dir: str = "ImageNet"
    split_dir: str = "ImageNet_LT"
    name = "imagenet_lt"


@register_dataset("places_lt")
@dataclass(frozen=True)
class PlacesLT(SplitFileDataset):
    image_dir: str = "Places"
    split_dir: str = "Places_LT"
    name = "places_lt"


@register_dataset("inat2018")
@dataclass(frozen=True)
class INaturalist2018(SplitFileDataset):
    image_dir: str = "iNat2018"
    split_dir: str = "iNaturalist2018"
    test_list: str = "val.txt"  # the official val list is the test set
    classnames_file: str = "categories.json"
    epochs: int = 15
    name = "inat2018"

    def read_classnames(self, path: Path) -> list[str]:
        return read_inat_categories(path)
