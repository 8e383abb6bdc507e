"""ImageNet-LT, Places-LT and iNaturalist 2018 from the standard `<relative path> <label>` split files."""
from __future__ import annotations

import codecs
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bench.fields import MAX_EPOCHS, check_fields, setting

from .base import DataError, FileImages, LongTailData
from .options import ImagesInsideRoot, UntestedClasses
from .registry import register_dataset
from .validation import HeldOutValidation


def read_utf8(path: Path) -> str:
    """The text of `path`; a UTF-8 BOM is dropped (it would stick to the first name) and bad bytes name the line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
        line = raw.count(b"\n", 0, start) + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 (byte {raw[start]:#04x}); "
                        f"save the file as UTF-8") from exc


def parse_split_file(path: Path) -> tuple[list[str], np.ndarray, list[int]]:
    """Read `<relative path> <integer label>` lines; blank lines are skipped, anything else malformed is an error,
    and so is a path listed twice (it would be counted twice)."""
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    rel_paths, labels, line_numbers = [], [], []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}, line {lineno}: expected '<relative path> <integer label>', got {text!r}")
        if parts[0] in first_line:
            raise DataError(f"{path}, lines {first_line[parts[0]]} and {lineno}: {parts[0]!r} is listed twice; "
                            f"delete one of the two lines")
        first_line[parts[0]] = lineno
        rel_paths.append(parts[0])
        labels.append(int(parts[1]))
        line_numbers.append(lineno)
    if not rel_paths:
        raise DataError(f"split file {path} lists no images")
    return rel_paths, np.asarray(labels, dtype=np.int64), line_numbers


def check_disjoint(splits: dict[str, FileImages]) -> None:
    """An image in two splits leaks answers (test into training, or into the validation that picks the model);
    name the first such line in each file."""
    names = list(splits)
    for i, first_name in enumerate(names):
        first = splits[first_name]
        first_line = dict(zip(first.rel_paths, first.line_numbers))
        for second_name in names[i + 1:]:
            second = splits[second_name]
            shared = [(rel, line) for rel, line in zip(second.rel_paths, second.line_numbers) if rel in first_line]
            if shared:
                rel, line = shared[0]
                more = f" ({len(shared) - 1} more images are in both)" if len(shared) > 1 else ""
                raise DataError(f"{rel!r} is in both the {first_name} and the {second_name} split: {first.list_file}, "
                                f"line {first_line[rel]} and {second.list_file}, line {line}{more}; delete it from "
                                f"one of the two files (the standard split files share no image)")


def read_classnames_txt(path: Path) -> list[str]:
    """One class name per line, in label order (ImageNet-LT / Places-LT `classnames.txt`)."""
    if not path.is_file():
        raise DataError(f"class-name file not found: {path}")
    return [line.strip() for line in read_utf8(path).splitlines() if line.strip()]


INAT_LEVELS = {"kingdom": "kingdom", "phylum": "phylum", "class": "class", "order": "order", "family": "family",
               "genus": "genus", "species": "name"}  # level -> its field in categories.json


def read_inat_categories(path: Path, level: str = "species") -> list[str]:
    """Each category's name at `level` (the species' own name by default) from iNaturalist's `categories.json`,
    indexed by the category `id`, the label in the split files."""
    if not path.is_file():
        raise DataError(f"categories file not found: {path}")
    key = INAT_LEVELS[level]
    try:
        categories = json.loads(read_utf8(path))
        names = {int(c["id"]): str(c[key]) for c in categories}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not an iNaturalist categories.json (a list of {{id, name, {key}, ...}}): "
                        f"{exc}") from exc
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: category ids are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


@dataclass(frozen=True)
class SplitFileDataset(HeldOutValidation, UntestedClasses, ImagesInsideRoot):
    """Shared loader; subclasses give the standard folder and file names (all overridable with --set). The
    validation split is a list file (val_list) or held out of the training split (val_fraction), not both."""

    image_dir: str = setting("", help="image root, relative to --data-root unless absolute")
    split_dir: str = setting("", help="folder of the split files, relative to --data-root unless absolute")
    train_list: str = setting("train.txt", help="training split file in split_dir: 'path label' lines")
    test_list: str = setting("test.txt", help="test split file in split_dir")
    val_list: str = setting("", help="validation split file in split_dir (ImageNet-LT, Places-LT: val.txt, the "
                                     "official 20 / 10 images per class); '': none")
    classnames_file: str = setting("classnames.txt", help="class names in split_dir, one per label")
    epochs: int = setting(5, low=1, high=MAX_EPOCHS, help="epochs of a regime whose recipe leaves them unset")

    def __post_init__(self):
        check_fields(self)

    name = ""

    @property
    def has_validation(self) -> bool:
        return bool(self.val_list) or super().has_validation

    def validation_hint(self, scope: str) -> str:
        return f"--set {scope}.val_list=val.txt (the official list) or {super().validation_hint(scope)}"

    def list_files(self) -> dict[str, str]:
        """Split name -> its list file name in split_dir."""
        return {"train": self.train_list, "test": self.test_list, **({"val": self.val_list} if self.val_list else {})}

    def read_classnames(self, path: Path) -> list[str]:
        return read_classnames_txt(path)

    def label_space(self, category_names: list[str]) -> tuple[list[str], np.ndarray | None]:
        """The classes, and a map from the split files' labels to them (None: the labels are the classes)."""
        return category_names, None

    def source_files(self, data_root: Path) -> list[Path]:
        """The files a build reads (besides the images): a change to one of them means a new build."""
        split_dir = data_root / self.split_dir
        return [split_dir / name for name in (self.classnames_file, *self.list_files().values())]

    def build(self, data_root: Path, download: bool) -> LongTailData:
        if download:
            raise DataError(f"{self.name} cannot be downloaded automatically; see the README for where to get it")
        image_root = data_root / self.image_dir
        split_dir = data_root / self.split_dir
        files = {"classnames_file": self.classnames_file,
                 **{f"{split}_list": name for split, name in self.list_files().items()}}
        for field_name, file_name in files.items():
            if not (split_dir / file_name).is_file():
                raise DataError(
                    f"{self.name}: {field_name} not found: {split_dir / file_name}. Put the standard split files "
                    f"in {split_dir} or set their location with --set {self.name}.split_dir=DIR "
                    f"(or --set {self.name}.{field_name}=FILE)."
                )
        category_names = self.read_classnames(split_dir / self.classnames_file)
        classnames, relabel = self.label_space(category_names)
        splits = {}
        for split, list_name in self.list_files().items():
            list_file = split_dir / list_name
            rel_paths, labels, lines = parse_split_file(list_file)
            bad = np.flatnonzero((labels < 0) | (labels >= len(category_names)))
            if len(bad):
                i = int(bad[0])
                raise DataError(f"{list_file}, line {lines[i]}: label {labels[i]} outside 0..{len(category_names) - 1} "
                                f"({len(category_names)} classes in {split_dir / self.classnames_file})")
            splits[split] = self.inside_root(FileImages(
                image_root, rel_paths, labels if relabel is None else relabel[labels], list_file, lines), self.name)
        check_disjoint(splits)
        return self.with_validation(LongTailData(self.name, classnames, **splits))


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
    """Species by default; a coarser taxonomic level (the references' iNaturalist2018_Kingdom … _Genus) groups
    the species into that level's taxa, numbered as the references do: alphabetically by name. Species keep
    the category id of the split files as label."""

    image_dir: str = "iNat2018"
    split_dir: str = "iNaturalist2018"
    test_list: str = "val.txt"  # the official val list is the test set
    classnames_file: str = "categories.json"
    epochs: int = setting(15, low=1, high=MAX_EPOCHS)
    level: Literal["kingdom", "phylum", "class", "order", "family", "genus", "species"] = setting(
        "species", help="taxonomic level of the classes (labels of coarser levels: their taxa in alphabetical order)")
    name = "inat2018"
    validation_hint = HeldOutValidation.validation_hint  # its official val.txt is the test split

    def read_classnames(self, path: Path) -> list[str]:
        return read_inat_categories(path, self.level)

    def label_space(self, category_names: list[str]) -> tuple[list[str], np.ndarray | None]:
        if self.level == "species":
            return category_names, None
        taxa = sorted(set(category_names))
        index = {taxon: i for i, taxon in enumerate(taxa)}
        return taxa, np.array([index[name] for name in category_names], dtype=np.int64)


def _register_inat_level(level: str) -> None:
    """`inat2018_<level>`: the iNaturalist 2018 split classified at one taxonomic level."""
    name = f"inat2018_{level}"
    cls = dataclass(frozen=True)(type(f"INaturalist2018{level.title()}", (INaturalist2018,), {
        "__annotations__": {"level": str}, "level": setting(level, help=INaturalist2018.__dataclass_fields__[
            "level"].metadata["help"]), "name": name, "named_by": ("level",),
        "__doc__": f"iNaturalist 2018 at the {level} level."}))
    register_dataset(name)(cls)


for _level in INAT_LEVELS:
    _register_inat_level(_level)
