import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench.data import DataError, check_images, dataset_config
from bench.data.synthetic import SyntheticLT
from tests.data.test_split_files import write_tree

REPO = Path(__file__).resolve().parents[2]


def _build(root):
    """A fresh build (build_dataset caches per root, and these tests change the files under one root)."""
    return dataset_config("places_lt").build(root, False)


@pytest.fixture
def places(tmp_path):
    write_tree(tmp_path, "places_lt")
    return tmp_path


def _image(root, split, line):
    data = _build(root)
    source = getattr(data, split)
    return source.root / source.rel_paths[source.line_numbers.index(line)]


def test_fingerprint_is_the_same_for_any_thread_count_and_process(places):
    data = _build(places)
    digest = check_images(data)
    assert len(digest) == 64 and digest != data.fingerprint
    assert check_images(data, threads=1) == digest == check_images(_build(places), threads=3, decode=True)
    code = ("from pathlib import Path; from bench.data import check_images, dataset_config; "
            f"print(check_images(dataset_config('places_lt').build(Path({str(places)!r}), False)))")
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == digest


def test_appending_a_line_changes_the_fingerprint(places):
    before = check_images(_build(places))
    extra = "train/class2/00000009.jpg"
    Image.new("RGB", (40, 30), (160, 0, 0)).save(places / "Places" / extra)
    with open(places / "Places_LT" / "train.txt", "a") as fh:
        fh.write(f"{extra} 2\n")
    assert check_images(_build(places)) != before


def test_touching_or_rewriting_an_image_changes_the_fingerprint(places):
    data = _build(places)
    before = check_images(data)
    path = _image(places, "test", 2)
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    touched = check_images(data)
    assert touched != before and _build(places).fingerprint == data.fingerprint  # the split itself is unchanged
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert check_images(data) == before  # unchanged tree, unchanged digest
    Image.effect_noise((40, 30), 50).convert("RGB").save(path)
    assert check_images(data) not in (before, touched)


def test_missing_empty_and_non_regular_files_are_one_error(places):
    split = places / "Places_LT"
    _image(places, "train", 2).unlink()
    _image(places, "test", 3).write_bytes(b"")
    directory = _image(places, "train", 4)
    directory.unlink()
    directory.mkdir()
    with pytest.raises(DataError) as error:
        check_images(_build(places))
    assert str(error.value) == (
        f"image not found: {places / 'Places' / 'train/class0/00000001.jpg'} (listed in {split / 'train.txt'}, "
        f"line 2); 2 more listed images are missing, empty or not regular files (1 in {split / 'train.txt'}, "
        f"1 in {split / 'test.txt'}). Check the image root (--data-root, or --set places_lt.image_dir=DIR) "
        f"or restore the files")


@pytest.mark.parametrize("damage, expected", [
    (lambda path: path.write_bytes(b""), "empty (0-byte) image"),
    (lambda path: (path.unlink(), path.mkdir()), "not a regular file"),
    (lambda path: (path.unlink(), path.symlink_to(path.parent / "nowhere.jpg")), "image not found"),
])
def test_each_kind_of_bad_file_is_named(places, damage, expected):
    damage(_image(places, "test", 2))
    with pytest.raises(DataError, match=rf"^{re.escape(expected)}: .*Places365_val_10\.jpg \(listed in .*test\.txt, "
                                        r"line 2\)\. Check the image root \(--data-root, or --set "
                                        r"places_lt\.image_dir=DIR\) or restore the files$"):
        check_images(_build(places))


def test_decode_finds_truncated_and_corrupt_images(places):
    truncated = _image(places, "train", 5)
    Image.effect_noise((64, 64), 50).convert("RGB").save(truncated, "JPEG")
    truncated.write_bytes(truncated.read_bytes()[:-200])
    _image(places, "test", 1).write_bytes(b"\xff\xd8 not a jpeg")
    data = _build(places)
    check_images(data)  # present and non-empty: fine without decoding
    with pytest.raises(DataError) as error:
        check_images(data, decode=True)
    message = str(error.value)
    assert message.startswith(f"corrupt or truncated image: {truncated} (listed in {data.train.list_file}, line 5): "
                              f"image file is truncated")
    assert message.endswith(f"; 1 more listed images are corrupt or truncated (1 in {data.test.list_file}). "
                            f"Replace the listed files with intact copies from the original download")


def test_missing_files_are_reported_before_corrupt_ones(places):
    _image(places, "train", 1).write_bytes(b"garbage")
    _image(places, "test", 3).unlink()
    with pytest.raises(DataError, match=r"^image not found: .*test\.txt, line 3\)\. Check the image root"):
        check_images(_build(places), decode=True)


def test_in_memory_images_are_hashed():
    data, same, other_seed = (SyntheticLT(seed=seed).build(None, False) for seed in (0, 0, 1))
    digest = check_images(data)
    assert len(digest) == 64 and digest == check_images(same) != check_images(other_seed)
    data.test.images[5, 3, 3, 0] ^= 1  # one bit of one pixel: same split, other images
    assert check_images(data) != digest and data.fingerprint == same.fingerprint


def test_progress_bars_only_when_asked(places, capsys):
    data = _build(places)
    check_images(data)
    assert capsys.readouterr().err == ""
    check_images(data, progress=True)
    err = capsys.readouterr().err
    assert "checking train images" in err and "checking test images" in err
    check_images(data, decode=True, progress=True)
    assert "decoding train images" in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads must be at least 1"):
        check_images(data, threads=0)


def test_standard_split_checks_name_the_first_missing_image(lt_splits, tmp_path):
    data = dataset_config("places_lt", {"split_dir": str(lt_splits / "Places_LT")}).build(tmp_path, False)
    with pytest.raises(DataError, match=r"image not found: .*train/airfield/00004851\.jpg \(listed in .*train\.txt, "
                                        r"line 1\); 98999 more listed images are missing"):
        check_images(data)


def test_image_root_hint_names_each_data_set_s_own_setting():
    from bench.data.checks import image_root_hint

    assert image_root_hint("places_lt") == "--set places_lt.image_dir=DIR"
    assert image_root_hint("folder").startswith("--set folder.path=DIR")  # `folder` has no image_dir
    assert image_root_hint("csv").startswith("--set csv.image_dir=DIR")
    from bench.data.user_data import CsvData, FolderData  # the fields the hints name exist

    assert "path" in FolderData.__dataclass_fields__ and "image_dir" not in FolderData.__dataclass_fields__
    assert "image_dir" in CsvData.__dataclass_fields__
