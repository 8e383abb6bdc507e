import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.data import DATASETS, DataError, build_dataset, dataset_config
from bench.data.base import FileImages
from bench.data.options import untested_line, untested_notes

from .test_cifar import write_cifar100
from .test_split_files import _write_image, write_tree
from .test_user_data import write_csv, write_folder, write_image


def _drop_lines(path: Path, keep) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in lines if keep(line)))


def untested_split_file_set(root: Path, name: str) -> dict[str, str]:
    """The tiny tree of `name` with the test line of its third class deleted."""
    split = write_tree(root, name)
    test_list = split / ("val.txt" if name == "inat2018" else "test.txt")
    _drop_lines(test_list, lambda line: not line.endswith(" 2"))
    return {}


def untested_cifar(root: Path) -> dict[str, str]:
    """Tiny CIFAR-100 pickles whose test file has no image of class 7."""
    write_cifar100(root, per_class=20, test_per_class=2)
    path = root / "cifar-100-python" / "test"
    with open(path, "rb") as fh:
        entry = pickle.load(fh)
    keep = [i for i, label in enumerate(entry["fine_labels"]) if label != 7]
    with open(path, "wb") as fh:
        pickle.dump({"data": entry["data"][keep], "fine_labels": [entry["fine_labels"][i] for i in keep]}, fh)
    return {"imbalance_ratio": "10"}  # 2 training images at the tail: none is empty


def untested_folder(root: Path) -> dict[str, str]:
    """An ImageFolder tree whose third class has an empty test folder."""
    write_folder(root / "mine", [4, 3, 2])
    for image in (root / "mine" / "test" / "class_2").iterdir():
        image.unlink()
    return {"path": "mine"}


def untested_csv(root: Path) -> dict[str, str]:
    """A CSV without a test row of its third class."""
    rows = [f"img/{split}/{c}_{i}.png,{c},{split}" for c in range(3) for split, n in (("train", 3), ("test", c < 2))
            for i in range(n)]
    for row in rows:
        write_image(root / "set" / row.split(",")[0])
    return write_csv(root / "set", rows)


KINDS = {  # data set -> (builder, its untested class, that class's name)
    "imagenet_lt": (lambda root: untested_split_file_set(root, "imagenet_lt"), 2, "third"),
    "places_lt": (lambda root: untested_split_file_set(root, "places_lt"), 2, "third"),
    "inat2018": (lambda root: untested_split_file_set(root, "inat2018"), 2, "Species 2"),
    "cifar100_lt": (untested_cifar, 7, "class_7"),
    "folder": (untested_folder, 2, "class_2"),
    "csv": (untested_csv, 2, "sea_lion"),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_class_without_test_images_is_refused_unless_allowed(tmp_path, name):
    write, untested, classname = KINDS[name]
    options = write(tmp_path)
    with pytest.raises(DataError, match=rf"^{name}: 1 of \d+ classes have no test images.*{untested} '{classname}'.*"
                                        rf"--set {name}\.allow_untested_classes=true"):
        build_dataset(dataset_config(name, options), tmp_path)
    data = build_dataset(dataset_config(name, {**options, "allow_untested_classes": "true"}), tmp_path)
    assert data.untested_classes["test"].tolist() == [untested]
    assert data.summary()["untested_classes"] == {"test": [classname]}
    assert untested_notes(data) == [f"data {data.name}: 1 class has no test images and is not in any metric: "
                                    f"'{classname}'"]


def test_the_refusal_names_the_test_list(tmp_path):
    untested_split_file_set(tmp_path, "places_lt")
    with pytest.raises(DataError, match=r"no test images \(.*Places_LT/test\.txt\): 2 'third'; every test metric"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_a_class_missing_from_the_test_folder_is_allowed_as_untested(tmp_path):
    write_folder(tmp_path, [4, 3, 2])
    shutil.rmtree(tmp_path / "test" / "class_1")
    with pytest.raises(DataError, match=r"only in .*train: 'class_1'.*folder\.allow_untested_classes=true"):
        build_dataset(dataset_config("folder", {"path": str(tmp_path)}), "/x")
    data = build_dataset(dataset_config("folder", {"path": str(tmp_path), "allow_untested_classes": "true"}), "/x")
    assert data.untested_classes["test"].tolist() == [1] and data.test.labels.tolist() == [0, 2]


def test_a_class_without_validation_images_is_refused_unless_allowed():
    options = {"imbalance_ratio": "150", "val_fraction": "0.1"}  # the last two classes keep 1 training image
    with pytest.raises(DataError, match=r"synthetic_lt: 2 of 20 classes have no validation images: 18 .*, 19 "
                                        r".*a class with a single training image has none to spare"):
        build_dataset(dataset_config("synthetic_lt", options), "/x")
    data = build_dataset(dataset_config("synthetic_lt", {**options, "allow_untested_classes": "true"}), "/x")
    assert data.untested_classes["val"].tolist() == [18, 19] and data.untested_classes["test"].tolist() == []
    assert data.summary()["untested_classes"] == {"test": [], "val": [data.classnames[18], data.classnames[19]]}


def test_a_validation_list_without_a_class_is_refused_unless_allowed(tmp_path):
    split = write_tree(tmp_path, "imagenet_lt")
    rel = "train/n00000001/n00000001_val.JPEG"
    _write_image(tmp_path / "ImageNet" / rel, (80, 0, 0))
    (split / "val.txt").write_text(f"{rel} 1\n")
    with pytest.raises(DataError, match=r"imagenet_lt: 2 of 3 classes have no validation images: 0 'first_class', "
                                        r"2 'third'"):
        build_dataset(dataset_config("imagenet_lt", {"val_list": "val.txt"}), tmp_path)
    allowed = {"val_list": "val.txt", "allow_untested_classes": "true"}
    assert build_dataset(dataset_config("imagenet_lt", allowed), tmp_path).untested_classes["val"].tolist() == [0, 2]


def test_every_data_set_has_the_setting():
    assert all(dataset_config(name).allow_untested_classes is False for name in DATASETS.names())


def test_untested_line_counts_and_names_the_classes():
    assert untested_line("test", ["a", "b"]) == "2 classes have no test images and are not in any metric: 'a', 'b'"
    assert untested_line("val", list("abcdefg")) == ("7 classes have no validation images and are not in any "
                                                     "validation metric: 'a', 'b', 'c', 'd', 'e' and 2 more")


@pytest.mark.parametrize("rel, outside", [("a/b.png", False), ("a/../b.png", False), ("./b.png", False),
                                          ("..b/c.png", False), ("../b.png", True), ("a/../../b.png", True),
                                          ("/etc/passwd", True), ("..", True)])
def test_paths_that_leave_the_root(rel, outside):
    images = FileImages(Path("/data"), [rel], np.array([0]), Path("/data/train.txt"), [1])
    assert images.outside_root() == ([0] if outside else [])


@pytest.mark.parametrize("name, list_name", [("places_lt", "train.txt"), ("inat2018", "val.txt")])
@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd"])
def test_split_file_paths_outside_the_image_root_are_refused_unless_allowed(tmp_path, name, list_name, rel):
    split = write_tree(tmp_path, name)
    with open(split / list_name, "a") as fh:
        fh.write(f"{rel} 0\n")
    line = len((split / list_name).read_text().splitlines())
    with pytest.raises(DataError, match=rf"{list_name}, line {line}: the image path '{rel}' leaves the image root "
                                        rf".*--set {name}\.allow_outside_root=true"):
        build_dataset(dataset_config(name), tmp_path)
    data = build_dataset(dataset_config(name, {"allow_outside_root": "true"}), tmp_path)
    assert rel in data.splits["train" if list_name == "train.txt" else "test"].rel_paths


@pytest.mark.parametrize("rel", ["../outside.png", "/tmp/outside.png"])
def test_csv_paths_outside_the_image_root_are_refused_unless_allowed(tmp_path, rel):
    rows = [f"img/{c}_{i}.png,{c},{split}" for c in range(3) for i, split in enumerate(["train", "train", "test"])]
    for row in rows:
        write_image(tmp_path / "set" / row.split(",")[0])
    files = write_csv(tmp_path / "set", rows[:4] + [f"{rel},1,train"] + rows[4:])
    with pytest.raises(DataError, match=rf"data\.csv, line 6: the image path '{rel}' leaves the image root .*/set; "
                                        rf".*\(--set csv\.image_dir=DIR.*--set csv\.allow_outside_root=true"):
        build_dataset(dataset_config("csv", files), tmp_path)
    data = build_dataset(dataset_config("csv", {**files, "allow_outside_root": "true"}), tmp_path)
    assert data.train.rel_paths[3] == rel


def test_a_symbolic_link_under_the_root_is_the_users_own_layout(tmp_path):
    write_tree(tmp_path / "elsewhere", "places_lt")
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "elsewhere" / "Places", tmp_path / "data" / "Places")  # images kept on another disk
    shutil.copytree(tmp_path / "elsewhere" / "Places_LT", tmp_path / "data" / "Places_LT")
    data = build_dataset(dataset_config("places_lt"), tmp_path / "data")
    assert data.test.load(0).size == (40, 30)
