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


def write_tree(root, name):
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
    write_tree(tmp_path, name)
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
    split = write_tree(tmp_path, "places_lt")
    (tmp_path / "Places" / "train/class0/00000001.jpg").unlink()
    data = build_dataset(dataset_config("places_lt"), tmp_path)
    with pytest.raises(DataError, match=r"image not found: .*00000001\.jpg.*train\.txt, line 2"):
        data.train.load(1)
    assert str(split) in str(pytest.raises(DataError, data.train.load, 1).value)


def test_unreadable_image_names_file_and_line(tmp_path):
    write_tree(tmp_path, "imagenet_lt")
    (tmp_path / "ImageNet" / "train/n00000001/n00000001_1.JPEG").write_bytes(b"\xff\xd8 garbage")
    data = build_dataset(dataset_config("imagenet_lt"), tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*n00000001_1\.JPEG.*train\.txt, line 5"):
        data.train.load(4)


@pytest.mark.parametrize("line", ["just_a_path.jpg", "a.jpg notanumber", "a.jpg 1.5"])
def test_malformed_line_names_file_and_line(tmp_path, line):
    split = write_tree(tmp_path, "places_lt")
    lines = (split / "train.txt").read_text().splitlines()
    lines.insert(2, line)
    (split / "train.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"train\.txt, line 3: expected '<relative path> <integer label>'"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_label_outside_class_list(tmp_path):
    split = write_tree(tmp_path, "places_lt")
    (split / "test.txt").write_text("val/class0/x.jpg 7\n")
    with pytest.raises(DataError, match=r"test\.txt, line 1: label 7 outside 0..2"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_missing_split_file_says_how_to_set_it(tmp_path):
    write_tree(tmp_path, "imagenet_lt")
    with pytest.raises(DataError, match=r"train_list not found: .*train2\.txt.*--set imagenet_lt\.split_dir=DIR"):
        build_dataset(dataset_config("imagenet_lt", {"train_list": "train2.txt"}), tmp_path)
    with pytest.raises(DataError, match=r"classnames_file not found: .*elsewhere"):
        build_dataset(dataset_config("imagenet_lt", {"split_dir": "elsewhere"}), tmp_path)


def test_byte_order_mark_is_dropped(tmp_path):
    split = write_tree(tmp_path, "places_lt")
    for name in ("classnames.txt", "train.txt"):
        (split / name).write_bytes(b"\xef\xbb\xbf" + (split / name).read_bytes())
    data = build_dataset(dataset_config("places_lt"), tmp_path)
    assert data.classnames[0] == "first_class" and data.train.rel_paths[0] == "train/class0/00000000.jpg"
    assert data.train.load(0).size == (40, 30)


@pytest.mark.parametrize("name, bom", [("train.txt", False), ("train.txt", True), ("classnames.txt", False)])
def test_invalid_utf8_names_file_and_line(tmp_path, name, bom):
    split = write_tree(tmp_path, "places_lt")
    lines = (split / name).read_bytes().split(b"\n")
    lines[1] = b"\xe9" + lines[1]  # a latin-1 "é"
    (split / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines))
    with pytest.raises(DataError, match=rf"{name}, line 2: not valid UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        build_dataset(dataset_config("places_lt"), tmp_path)


def test_inaturalist_categories_with_bom_or_bad_encoding(tmp_path):
    split = write_tree(tmp_path, "inat2018")
    categories = split / "categories.json"
    text = json.dumps([{"id": 0, "name": "Species 0"}, {"id": 1, "name": "Spécies 1"}, {"id": 2, "name": "x"}],
                      ensure_ascii=False, indent=1)
    categories.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_inat_categories(categories)[:2] == ["Species 0", "Spécies 1"]
    categories.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"categories\.json, line 8: not valid UTF-8.*save the file as UTF-8"):
        build_dataset(dataset_config("inat2018"), tmp_path)


def test_duplicate_line_names_both_lines(tmp_path):
    split = write_tree(tmp_path, "imagenet_lt")
    lines = (split / "train.txt").read_text().splitlines()
    (split / "train.txt").write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(DataError, match=r"train\.txt, lines 2 and 7: 'train/n00000000/n00000000_1\.JPEG' is listed "
                                        r"twice; delete one of the two lines"):
        build_dataset(dataset_config("imagenet_lt"), tmp_path)


def test_image_in_train_and_test_names_both_files_and_lines(tmp_path):
    split = write_tree(tmp_path, "places_lt")
    train_lines = (split / "train.txt").read_text().splitlines()
    (split / "test.txt").write_text("\n".join(["val/class0/Places365_val_00.jpg 0", train_lines[4], train_lines[2]]))
    with pytest.raises(DataError) as error:
        build_dataset(dataset_config("places_lt"), tmp_path)
    message = str(error.value)
    assert "'train/class1/00000001.jpg' is in both the train and the test split" in message
    assert f"{split / 'train.txt'}, line 5 and {split / 'test.txt'}, line 2 (1 more images are in both)" in message
    assert "delete it from one of the two files" in message


def test_class_without_training_images_names_class_and_split_file(tmp_path):
    split = write_tree(tmp_path, "places_lt")
    (split / "classnames.txt").write_text("first_class\nsecond\nthird\nfourth\n")
    with pytest.raises(DataError) as error:
        build_dataset(dataset_config("places_lt"), tmp_path)
    message = str(error.value)
    assert message.startswith("places_lt: 1 of 4 classes have no image in the train split ")
    assert f"{split / 'train.txt'}: 3 'fourth'; list at least one training image of each class in" in message


def test_many_empty_classes_are_counted(tmp_path):
    split = write_tree(tmp_path, "imagenet_lt")
    (split / "classnames.txt").write_text("\n".join(f"class {i}" for i in range(10)))
    with pytest.raises(DataError, match=r"7 of 10 classes have no image in the train split .*train\.txt: "
                                        r"3 'class 3', 4 'class 4', 5 'class 5', 6 'class 6', 7 'class 7' and 2 more"):
        build_dataset(dataset_config("imagenet_lt"), tmp_path)


LEVEL_COUNTS = {"kingdom": 6, "phylum": 25, "class": 57, "order": 272, "family": 1118, "genus": 4401,
                "species": 8142}


def test_inaturalist_levels_from_the_shared_categories(lt_splits, tmp_path):
    """Each taxonomic level on the real categories.json: its number of taxa, labels numbered alphabetically (as
    the references do) and every species mapped to its own taxon."""
    categories = json.loads((lt_splits / "iNaturalist2018" / "categories.json").read_text())
    split = tmp_path / "iNaturalist2018"
    split.mkdir()
    (split / "categories.json").write_text(json.dumps(categories))
    species = np.arange(len(categories))
    (split / "train.txt").write_text("".join(f"train_val2018/x/{c}/{i}.jpg {c}\n" for c in species
                                             for i in range(1 + c % 3)))
    (split / "val.txt").write_text("".join(f"train_val2018/x/{c}/v.jpg {c}\n" for c in species))
    for level, taxa in LEVEL_COUNTS.items():
        data = build_dataset(dataset_config(f"inat2018_{level}"), tmp_path)
        assert data.num_classes == taxa and data.name == f"inat2018_{level}"
        key = "name" if level == "species" else level
        truth = [c[key] for c in sorted(categories, key=lambda c: c["id"])]
        names = sorted(set(truth)) if level != "species" else truth
        assert data.classnames == names
        expected_test = [names.index(truth[c]) for c in species] if level != "species" else list(species)
        assert data.test.labels.tolist() == expected_test
        per_species = 1 + species % 3
        expected_counts = np.bincount(expected_test, weights=per_species, minlength=taxa)
        assert data.train_class_counts.tolist() == expected_counts.astype(int).tolist()
        assert sum(len(g) for g in data.groups.as_dict().values()) == taxa
    assert dataset_config("inat2018").level == "species"


def test_an_unknown_level_or_a_categories_file_without_it_is_refused(tmp_path):
    from bench.overrides import OverrideError

    with pytest.raises((OverrideError, ValueError), match="level"):
        dataset_config("inat2018", {"level": "tribe"})
    write_tree(tmp_path, "inat2018")  # its categories have no phylum
    with pytest.raises(DataError, match="phylum"):
        build_dataset(dataset_config("inat2018_phylum"), tmp_path)
