import json

import numpy as np
import pytest
from PIL import Image

from bench.data import DataError, build_dataset, dataset_config
from bench.data.loading import make_loader
from bench.data.split_files import parse_split_file, read_classnames_txt, read_inat_categories
from bench.data.transforms import test_transform as make_test_transform


def test_places_lt_standard_splits(lt_splits):
    data = build_dataset(dataset_config("places_lt", {"split_dir": str(lt_splits / "Places_LT")}), "/nonexistent")
    assert data.num_classes == 365 and data.classnames[0] == "airfield"
    assert len(data.train) == 62500 and len(data.test) == 36500
    assert data.train_class_counts.max() == 4980 and data.train_class_counts.min() == 5
    assert np.all(np.bincount(data.test.labels) == 100)
    assert {k: len(v) for k, v in data.groups.as_dict().items()} == {"many": 131, "medium": 163, "few": 71}


def test_imagenet_lt_standard_lists(lt_splits):
    folder = lt_splits / "ImageNet_LT"
    paths, labels, _ = parse_split_file(folder / "test.txt")
    assert len(paths) == 50000 and np.all(np.bincount(labels) == 50) and labels.max() == 999
    assert paths[0].startswith("val/n01440764/")
    _, val_labels, _ = parse_split_file(folder / "val.txt")
    assert len(val_labels) == 20000 and np.all(np.bincount(val_labels) == 20)
    names = read_classnames_txt(folder / "classnames.txt")
    assert len(names) == 1000 and names[:2] == ["tench", "goldfish"]


def test_inaturalist_val_and_categories(lt_splits):
    folder = lt_splits / "iNaturalist2018"
    paths, labels, _ = parse_split_file(folder / "val.txt")
    assert len(paths) == 24426 and np.all(np.bincount(labels, minlength=8142) == 3)
    names = read_inat_categories(folder / "categories.json")
    assert len(names) == 8142 and names[0] == "Hermodice carunculata"


def _write_image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def _tree(root, name):
    """A tiny data tree in the real layout of each data set: images, split files, class names."""
    layouts = {
        "imagenet_lt": ("ImageNet", "ImageNet_LT", "train/n0000000{c}/n0000000{c}_{i}.JPEG",
                        "val/n0000000{c}/ILSVRC2012_val_{c}{i}.JPEG", "test.txt"),
        "places_lt": ("Places", "Places_LT", "train/class{c}/{i:08d}.jpg", "val/class{c}/Places365_val_{c}{i}.jpg",
                      "test.txt"),
        "inat2018": ("iNat2018", "iNaturalist2018", "train_val2018/Plantae/{c}/train{i}.jpg",
                     "train_val2018/Plantae/{c}/val{i}.jpg", "val.txt"),
    }
    image_dir, split_dir, train_fmt, test_fmt, test_name = layouts[name]
    split = root / split_dir
    split.mkdir(parents=True)
    train_lines, test_lines = [], []
    for c, n in enumerate([3, 2, 1]):
        for i in range(n):
            rel = train_fmt.format(c=c, i=i)
            _write_image(root / image_dir / rel, (80 * c, 0, 0))
            train_lines.append(f"{rel} {c}")
        rel = test_fmt.format(c=c, i=0)
        _write_image(root / image_dir / rel, (80 * c, 0, 0))
        test_lines.append(f"{rel} {c}")
    (split / "train.txt").write_text("\n".join(train_lines) + "\n")
    (split / test_name).write_text("\n".join(test_lines) + "\n")
    if name == "inat2018":
        categories = [{"id": i, "name": f"Species {i}", "kingdom": "Plantae"} for i in (2, 0, 1)]
        (split / "categories.json").write_text(json.dumps(categories))
    else:
        (split / "classnames.txt").write_text("first_class\nsecond\nthird\n")
    return split


@pytest.mark.parametrize("name", ["imagenet_lt", "places_lt", "inat2018"])
def test_tiny_tree_loads_end_to_end(tmp_path, name):
    _tree(tmp_path, name)
    data = build_dataset(dataset_config(name), tmp_path)
    assert list(data.train_class_counts) == [3, 2, 1] and len(data.test) == 3
    if name == "inat2018":
        assert data.classnames == ["Species 0", "Species 1", "Species 2"]
    else:
        assert data.classnames[0] == "first_class"
    loader = make_loader(data.test, make_test_transform(32, (0.5,) * 3, (0.5,) * 3), 2, shuffle=False, seed=0,
                         workers=0)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 1]
    assert images[1, 0].mean() > images[0, 0].mean()  # class 1 is redder than class 0


def test_missing_image_names_file_and_line(tmp_path):
    split = _tree(tmp_path, "places_lt")
    (tmp_path / "Places" / "train/class0/00000001.jpg").unlink()
    data = build_dataset(dataset_config("places_lt"), tmp_path)
    with pytest.raises(DataError, match=r"image not found: .*00000001\.jpg.*train\.txt, line 2"):
        data.train.load(1)
    assert str(split) in str(pytest.raises(DataError, data.train.load, 1).value)


def test_unreadable_image_names_file_and_line(tmp_path):
    _tree(tmp_path, "imagenet_lt")
    (tmp_path / "ImageNet" / "train/n00000001/n00000001_1.JPEG").write_bytes(b"\xff\xd8 garbage")
    data = build_dataset(dataset_config("imagenet_lt"), tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*n00000001_1\.JPEG.*train\.txt, line 5"):
        data.train.load(4)


@pytest.mark.parametrize("line", ["just_a_path.jpg", "a.jpg notanumber", "a.jpg 1.5"])
def test_malformed_line_names_file_and_line(tmp_path, line):
    split = _tree(tmp_path, "places_lt")
    lines = (split / "train.txt").read_text().splitlines()
    lines.insert(2, line)
    (split / "train.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"train\.txt, line 3: expected '<relative path> <integer label>'"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_label_outside_class_list(tmp_path):
    split = _tree(tmp_path, "places_lt")
    (split / "test.txt").write_text("val/class0/x.jpg 7\n")
    with pytest.raises(DataError, match=r"test\.txt, line 1: label 7 outside 0..2"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_missing_split_file_says_how_to_set_it(tmp_path):
    _tree(tmp_path, "imagenet_lt")
    with pytest.raises(DataError, match=r"train_list not found: .*train2\.txt.*--set imagenet_lt\.split_dir=DIR"):
        build_dataset(dataset_config("imagenet_lt", {"train_list": "train2.txt"}), tmp_path)
    with pytest.raises(DataError, match=r"classnames_file not found: .*elsewhere"):
        build_dataset(dataset_config("imagenet_lt", {"split_dir": "elsewhere"}), tmp_path)
