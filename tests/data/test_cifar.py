import builtins
import os
import pickle
import struct

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


def _py2_str(value: bytes) -> bytes:
    """A python-2 `str` as cPickle protocol 2 writes it (SHORT_BINSTRING or BINSTRING)."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def _py2_int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-100 `train`/`test` pickle byte for byte in the layout of the genuine python-2 files."""
    rows, cols = data.shape
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b")
             + b"\x87R(" + _py2_int(1) + _py2_int(rows) + _py2_int(cols) + b"\x86"
             + b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R("
             + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
             + b"\x89" + _py2_str(data.tobytes()) + b"tb")
    label_list = b"](" + b"".join(_py2_int(v) for v in labels) + b"e"
    return (b"\x80\x02}(" + _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 1") + _py2_str(b"data")
            + array + _py2_str(b"fine_labels") + label_list + b"u.")


def _rewrite(path, change):
    """Load one of this module's own fixture pickles, change its dict, write it back."""
    with open(path, "rb") as fh:
        entry = pickle.load(fh)
    change(entry)
    with open(path, "wb") as fh:
        pickle.dump(entry, fh)


def _train_rows(data) -> list[int]:
    return [int(key.split(":")[1]) for key in data.train.keys()]


def test_genuine_python2_layout_and_both_pickle_protocols_load(tmp_path):
    root = write_cifar100(tmp_path, per_class=100, test_per_class=1)
    folder = root / "cifar-100-python"
    data = np.arange(10000 * 3072, dtype=np.int64).reshape(10000, 3072).astype(np.uint8)
    labels = np.tile(np.arange(100), 100).tolist()
    raw = py2_pickle(data, labels)
    assert np.array_equal(pickle.loads(raw, encoding="latin1")["data"], data)  # the hand-made bytes are a pickle
    (folder / "train").write_bytes(raw)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    built = build_dataset(dataset_config("cifar100_lt"), root)
    assert np.array_equal(built.train.images, images[_train_rows(built)])
    for protocol in (4, 5):  # what numpy 2 writes by default (python < 3.14) and from python 3.14 on
        (folder / "train").write_bytes(pickle.dumps({"data": data, "fine_labels": labels}, protocol=protocol))
        again = build_dataset(dataset_config("cifar100_lt", {"split_seed": str(protocol)}), root)
        assert np.array_equal(again.train.images, images[_train_rows(again)])


class _RunsCode:
    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


@pytest.mark.parametrize("split", ["train", "meta"])
@pytest.mark.parametrize("call, source", [(os.system, "touch {marker}"),
                                          (builtins.eval, "open({marker!r}, 'w').close()")])
def test_crafted_pickle_is_refused_before_it_runs(tmp_path, split, call, source):
    root = write_cifar100(tmp_path / "data", per_class=5, test_per_class=1)
    marker = tmp_path / "pwned"
    path = root / "cifar-100-python" / split
    with open(path, "wb") as fh:
        pickle.dump({"data": _RunsCode(call, source.format(marker=str(marker))), "fine_labels": [0]}, fh)
    with pytest.raises(DataError) as error:
        build_dataset(dataset_config("cifar100_lt"), root)
    message = str(error.value)
    assert f"{path} asks to load the global {call.__module__}.{call.__name__}" in message
    assert "refused" in message and "--download" in message
    assert not marker.exists()
    with open(path, "rb") as fh:
        pickle.load(fh)  # the same file through plain pickle does run the payload
    assert marker.exists()


@pytest.mark.parametrize("change, expected", [
    (lambda e: e.update(data=e["data"][:, :3000]), r"'data' must be N×3072 pixel values in 0..255, got uint8 "
                                                   r"\(500, 3000\)"),
    (lambda e: e.update(data=e["data"].astype(np.int64) + 255), r"'data' must be N×3072 .*got int64 \(500, 3072\)"),
    (lambda e: e.update(fine_labels=e["fine_labels"][:-1]), r"'fine_labels' must hold 500 integer labels"),
    (lambda e: e.update(fine_labels=[str(v) for v in e["fine_labels"]]), r"'fine_labels' must hold 500 integer"),
    (lambda e: e["fine_labels"].__setitem__(7, 100), r"image 7 has label 100, outside 0..99 \(100 classes in .*meta\)"),
    (lambda e: e["fine_labels"].__setitem__(3, -1), r"image 3 has label -1, outside 0..99"),
    (lambda e: e.update(fine_labels=[v if v != 42 else 41 for v in e["fine_labels"]]),
     r"1 of 100 classes have no image: 42 'class_42'"),
    (lambda e: e.pop("data"), r"is not a CIFAR-100 python pickle \('data', 'fine_labels'\): KeyError"),
])
def test_damaged_train_pickle_names_file_and_fix(tmp_path, change, expected):
    root = write_cifar100(tmp_path, per_class=5, test_per_class=1)
    path = root / "cifar-100-python" / "train"
    _rewrite(path, change)
    with pytest.raises(DataError, match=expected) as error:
        build_dataset(dataset_config("cifar100_lt"), root)
    assert str(error.value).startswith(str(path))
    assert str(error.value).endswith(f"delete the folder {path.parent} and rerun with --download to fetch "
                                     f"CIFAR-100 again")


def test_test_labels_are_checked_against_meta(tmp_path):
    root = write_cifar100(tmp_path, per_class=5, test_per_class=1)
    _rewrite(root / "cifar-100-python" / "test", lambda e: e["fine_labels"].__setitem__(0, 250))
    with pytest.raises(DataError, match=r"cifar-100-python/test: image 0 has label 250, outside 0..99"):
        build_dataset(dataset_config("cifar100_lt"), root)


def test_meta_without_class_names_is_named(tmp_path):
    root = write_cifar100(tmp_path, per_class=5, test_per_class=1)
    _rewrite(root / "cifar-100-python" / "meta", lambda e: e.pop("fine_label_names"))
    with pytest.raises(DataError, match=r"cifar-100-python/meta holds no 'fine_label_names' list.*--download"):
        build_dataset(dataset_config("cifar100_lt"), root)


DOWNLOAD_ERROR = (r"^--download: cannot fetch CIFAR-100 from https://www\.cs\.toronto\.edu/~kriz/"
                  r"cifar-100-python\.tar\.gz into .*\(({reason})\)\. To place the files by hand .*tar xzf "
                  r"cifar-100-python\.tar\.gz -C .*; then run without --download$")


def test_a_download_without_network_says_how_to_place_the_files(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=DOWNLOAD_ERROR.format(reason="URLError: .*Name or service not known.*")):
        build_dataset(dataset_config("cifar100_lt"), tmp_path, download=True)


def test_a_stalled_download_fails_instead_of_waiting_forever(tmp_path, monkeypatch):
    """A server that accepts the connection and never answers (urllib alone would wait forever)."""
    import socket
    import time

    import torchvision

    from bench.data import cifar

    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(torchvision.datasets.CIFAR100, "url",
                            f"http://127.0.0.1:{server.getsockname()[1]}/cifar-100-python.tar.gz")
        monkeypatch.setattr(cifar, "DOWNLOAD_TIMEOUT_S", 1.0)
        start = time.monotonic()
        with pytest.raises(DataError, match=r"^--download: cannot fetch CIFAR-100 from http://127\.0\.0\.1:\d+/\S+ "
                                            r"into .*timed out.*tar xzf cifar-100-python\.tar\.gz"):
            build_dataset(dataset_config("cifar100_lt"), tmp_path, download=True)
    assert time.monotonic() - start < 30 and socket.getdefaulttimeout() is None
