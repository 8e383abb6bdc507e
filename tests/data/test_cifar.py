import pickle

import numpy as np
import pytest

from bench.data import DataError, build_dataset, dataset_config
from bench.data.cifar import cifar_lt_counts


def write_cifar100(root, per_class=500, test_per_class=100, num_classes=100):
    """CIFAR-100 python pickles; pixel values encode the image index so selections can be checked."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", per_class), ("test", test_per_class)):
        labels = np.tile(np.arange(num_classes), n)  # interleaved like the real files (not sorted by class)
        index = np.arange(len(labels))
        data = np.zeros((len(labels), 3072), dtype=np.uint8)
        data[:, 0], data[:, 1] = index % 256, index // 256
        with open(folder / split, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels.tolist()}, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"class_{i}" for i in range(num_classes)]}, fh)
    return root


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return write_cifar100(tmp_path_factory.mktemp("cifar"))


@pytest.mark.parametrize("name, total", [("cifar100_lt", 10847), ("cifar100_lt_ir50", 12608),
                                         ("cifar100_lt_ir10", 19573)])
def test_long_tail_totals(cifar_root, name, total):
    data = build_dataset(dataset_config(name), cifar_root)
    assert len(data.train) == total
    assert len(data.test) == 10000 and np.all(np.bincount(data.test.labels) == 100)
    assert data.num_classes == 100 and data.classnames[3] == "class_3"


def test_ir100_profile_and_groups(cifar_root):
    data = build_dataset(dataset_config("cifar100_lt"), cifar_root)
    counts = data.train_class_counts
    assert counts[0] == 500 and counts[-1] == 5 and np.all(np.diff(counts) <= 0)
    assert {k: len(v) for k, v in data.groups.as_dict().items()} == {"many": 35, "medium": 35, "few": 30}


def test_selection_follows_reference_shuffle(cifar_root):
    """Seed 0 once, then per class shuffle that class's indices and keep the first n_i."""
    data = build_dataset(dataset_config("cifar100_lt"), cifar_root)
    images = data.train.images
    chosen = images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 1, 0].astype(int)  # decode the indices
    labels = np.tile(np.arange(100), 500)
    np.random.seed(0)
    expected = []
    for cls, n in enumerate(cifar_lt_counts(500, 100, 100)):
        idx = np.where(labels == cls)[0]
        np.random.shuffle(idx)
        expected.extend(idx[:n])
    assert np.array_equal(chosen, np.array(expected))
    assert np.array_equal(data.train.labels, labels[chosen])


def test_imbalance_ratio_option_and_fingerprints(cifar_root):
    ir100 = build_dataset(dataset_config("cifar100_lt"), cifar_root)
    again = build_dataset(dataset_config("cifar100_lt", {"split_seed": "0"}), cifar_root)
    ir50 = build_dataset(dataset_config("cifar100_lt", {"imbalance_ratio": "50"}), cifar_root)
    other_seed = build_dataset(dataset_config("cifar100_lt", {"split_seed": "1"}), cifar_root)
    assert len(ir50.train) == 12608
    assert ir100.fingerprint == again.fingerprint
    assert len({ir100.fingerprint, ir50.fingerprint, other_seed.fingerprint}) == 3


def test_missing_data_names_path_and_download_flag(tmp_path):
    with pytest.raises(DataError, match=r"cifar-100-python.*--download"):
        build_dataset(dataset_config("cifar100_lt"), tmp_path)


def test_corrupt_pickle_is_named(tmp_path):
    root = write_cifar100(tmp_path, per_class=5, test_per_class=1)
    (root / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"cannot read CIFAR-100 file .*train"):
        build_dataset(dataset_config("cifar100_lt"), root)
