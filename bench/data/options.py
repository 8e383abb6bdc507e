"""Data-set settings that let through what the checks before training refuse by default, and those checks.

A class without test (or validation) images vanishes from every metric of that split, and an image path that
leaves the image root reads files the data set does not own; both are refused with the setting that allows
them, so that a result never rests on either without the user having said so (and the job id records it).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.fields import setting

from .base import DataError, FileImages, LongTailData, name_classes, shown
from .checks import image_root_hint

SPLIT_WORDS = {"test": "test", "val": "validation"}
UNTESTED_FIXES = {
    "test": "Give every class test images",
    "val": "Give every class validation images (held out with val_fraction, a class with a single training "
           "image has none to spare)",
}


@dataclass(frozen=True)
class UntestedClasses:
    """Whether a class may lack test or validation images (then named in the results and the report)."""

    allow_untested_classes: bool = setting(
        False, help="run although some classes have no test (or validation) image: they are in no metric of that "
                    "split, and the results and the report name them", identity=False)


def untested_line(split: str, names: list[str]) -> str:
    """`2 classes have no test images and are not in any metric: 'dog', 'cat'`: for the log and the report."""
    metric = "any metric" if split == "test" else f"any {SPLIT_WORDS[split]} metric"
    have, are = ("class has", "is") if len(names) == 1 else ("classes have", "are")
    return f"{len(names)} {have} no {SPLIT_WORDS[split]} images and {are} not in {metric}: {shown(names)}"


def untested_notes(data: LongTailData) -> list[str]:
    """A line per evaluated split that lacks some classes (allowed, or build_dataset would have refused them)."""
    return [f"data {data.name}: {untested_line(split, [data.classnames[i] for i in classes])}"
            for split, classes in data.untested_classes.items() if len(classes)]


def check_tested(data: LongTailData, scope: str, allowed: bool) -> None:
    """Refuse a class without images in the test or validation split, unless the data set `scope` allows it."""
    untested = {split: classes for split, classes in data.untested_classes.items() if len(classes)}
    if allowed or not untested:
        return
    split, classes = next(iter(untested.items()))
    source = f" ({data.test.list_file})" if split == "test" and isinstance(data.test, FileImages) else ""
    raise DataError(f"{scope}: {len(classes)} of {data.num_classes} classes have no {SPLIT_WORDS[split]} images"
                    f"{source}: {name_classes(classes, data.classnames)}; every {SPLIT_WORDS[split]} metric would "
                    f"leave them out. {UNTESTED_FIXES[split]}, or --set {scope}.allow_untested_classes=true to run "
                    f"without them (the results and the report name them)")


@dataclass(frozen=True)
class ImagesInsideRoot:
    """Whether a listed image path may leave the image root (an absolute path or a `..` escape)."""

    allow_outside_root: bool = setting(
        False, help="accept listed image paths that leave the image root (absolute, or climbing out with ..)",
        identity=False)

    def inside_root(self, images: FileImages, scope: str) -> FileImages:
        """`images`, refused at the first path that leaves its root unless allow_outside_root is set."""
        outside = [] if self.allow_outside_root else images.outside_root()
        if outside:
            i = outside[0]
            more = f" ({len(outside) - 1} more lines do)" if len(outside) > 1 else ""
            raise DataError(f"{images.list_file}, line {images.line_numbers[i]}: the image path "
                            f"{images.rel_paths[i]!r} leaves the image root {images.root}{more}; list paths "
                            f"relative to an image root that holds them all ({image_root_hint(scope)}), or "
                            f"--set {scope}.allow_outside_root=true if they are meant to leave it")
        return images
