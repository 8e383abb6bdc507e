import numpy as np
import pytest

from bench.data import DataError, build_dataset, check_images, dataset_config
from bench.data.validation import held_out_indices

from .test_split_files import _write_image, write_tree

# Built by the code before validation splits existed (commit 212cbed): the default options must still give
# exactly these splits, so recorded runs and fixtures stay valid.
BEFORE = {"synthetic_lt": ("e8ca64985d4159f263d51f846908e03b3098699481e77dbeb5f3e34be8b49aaf",
                           "6dcf68c288d451a64179062a20dbf6932d723a923afd7aa2d4c22d4d6898174c"),
          "demo_lt": ("00f49b15c9befa03e919b2a39f4b50c609122ed668598f74e18f6b3da51965e7",
                      "d2e8f7428fe1f74d65ecacd38ed4c63bcdd679c7443eaf41262bd6f0de658b8d")}


def _synthetic(**options):
    return build_dataset(dataset_config("synthetic_lt", {k: str(v) for k, v in options.items()}), "/nonexistent")


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_default_options_build_the_data_as_before(name):
    data = build_dataset(dataset_config(name), "/nonexistent")
    assert data.val is None and (data.fingerprint, check_images(data)) == BEFORE[name]


def test_held_out_split_keeps_a_training_image_per_class_and_is_disjoint():
    full, data = _synthetic(), _synthetic(val_fraction=0.3)
    counts, val_counts = data.train_class_counts, np.bincount(data.val.labels, minlength=data.num_classes)
    assert np.all(counts >= 1) and np.all(val_counts >= 1) and np.all(counts + val_counts == full.train_class_counts)
    assert np.all(val_counts == np.minimum(np.ceil(0.3 * full.train_class_counts - 1e-9), full.train_class_counts - 1))
    assert not set(data.train.keys()) & set(data.val.keys())
    assert sorted(data.train.keys() + data.val.keys()) == sorted(full.train.keys())
    assert data.fingerprint != full.fingerprint and data.summary()["val_size"] == len(data.val)


def test_held_out_split_is_deterministic_per_seed():
    first, again, other = _synthetic(val_fraction=0.2), _synthetic(val_fraction=0.2), _synthetic(val_fraction=0.2,
                                                                                                 val_seed=1)
    assert first.val.keys() == again.val.keys() and first.fingerprint == again.fingerprint
    assert first.val.keys() != other.val.keys() and first.fingerprint != other.fingerprint
    assert np.array_equal(first.val.images, again.val.images)


def test_a_class_with_one_image_gives_none():
    labels = np.array([0, 0, 0, 1, 2, 2])
    held = held_out_indices(labels, 0.5, 0)
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 0, 1]


def test_validation_list_is_read_like_the_test_list(tmp_path):
    split = write_tree(tmp_path, "imagenet_lt")
    rels = [f"train/n0000000{c}/n0000000{c}_val.JPEG" for c in range(3)]  # the official val.txt lists images of
    for c, rel in enumerate(rels):  # ImageNet's train folder
        _write_image(tmp_path / "ImageNet" / rel, (80 * c, 0, 0))
    (split / "val.txt").write_text("".join(f"{rel} {c}\n" for c, rel in enumerate(rels)))
    plain = build_dataset(dataset_config("imagenet_lt"), tmp_path)
    data = build_dataset(dataset_config("imagenet_lt", {"val_list": "val.txt"}), tmp_path)
    assert plain.val is None and data.val.labels.tolist() == [0, 1, 2] and data.val.keys() == rels
    assert data.train.keys() == plain.train.keys() and data.fingerprint != plain.fingerprint
    assert check_images(data) != check_images(plain)


@pytest.mark.parametrize("line, message", [("train/n00000000/n00000000_0.JPEG 0", "both the train and the val split"),
                                           ("train/n00000001/x.JPEG 7", "label 7 outside")])
def test_validation_list_shares_no_image_and_has_valid_labels(tmp_path, line, message):
    split = write_tree(tmp_path, "imagenet_lt")
    (split / "val.txt").write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        build_dataset(dataset_config("imagenet_lt", {"val_list": "val.txt"}), tmp_path)


def test_inaturalist_holds_out_part_of_its_training_list(tmp_path):
    write_tree(tmp_path, "inat2018")  # the third class has one training image: none to hold out
    data = build_dataset(dataset_config("inat2018", {"val_fraction": "0.5", "allow_untested_classes": "true"}),
                         tmp_path)
    assert data.train_class_counts.tolist() == [1, 1, 1] and data.val.labels.tolist() == [0, 0, 1]
    assert {data.val.line_numbers[0], data.val.line_numbers[1]} <= {1, 2, 3}


def test_a_list_and_a_fraction_together_are_refused(tmp_path):
    split = write_tree(tmp_path, "places_lt")
    _write_image(tmp_path / "Places" / "train/class1/val.jpg", (80, 0, 0))
    (split / "val.txt").write_text("train/class1/val.jpg 1\n")
    with pytest.raises(DataError, match="both ask for a validation split"):
        build_dataset(dataset_config("places_lt", {"val_list": "val.txt", "val_fraction": "0.1"}), tmp_path)
