import json
import time

import pytest
from PIL import Image

from bench.cli import main
from bench.data import DataError, build_dataset, check_images, dataset_config


def write_image(path, colour=(0, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def write_folder(root, train_counts, names=None, test_per_class=1):
    """An ImageFolder tree: root/train/<class>/NNN.png and root/test/<class>/tN.png, class c in red 40·c."""
    names = names or [f"class_{c}" for c in range(len(train_counts))]
    for c, (name, n) in enumerate(zip(names, train_counts)):
        for i in range(n):
            write_image(root / "train" / name / f"{i:03d}.png", (40 * c, 0, 0))
        for i in range(test_per_class):
            write_image(root / "test" / name / f"t{i}.png", (40 * c, 0, 0))
    return root


def write_csv(folder, rows, header="path,label,split", classnames=("cat", "dog", "sea_lion")):
    """data.csv with `rows` (images written for each row's path) and classnames.txt, both in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.csv").write_text("\n".join([header, *rows]) + "\n")
    (folder / "classnames.txt").write_text("\n".join(classnames) + "\n")
    return {"path": str(folder / "data.csv"), "classnames_file": str(folder / "classnames.txt")}


def csv_config(folder, rows, **overrides):
    return dataset_config("csv", {**write_csv(folder, rows), **overrides})


BALANCED_ROWS = [f"img/{split}/{c}_{i}.png,{c},{split}" for c in range(3) for split, n in (("train", 6), ("test", 1))
                 for i in range(n)]


def cifar_lt_profile(n_max, k, ratio):
    """Written out here, independently of the code under test: n_i = int(n_max · (1/IR)^(i/(K−1))), at least 1."""
    return [max(1, int(n_max * (1 / ratio) ** (i / (k - 1)))) for i in range(k)]


def test_folder_classes_labels_and_counts(tmp_path):
    root = write_folder(tmp_path / "mine", [3, 2, 4], names=["zebra", "apple_tree", "Cat"])
    write_image(root / "train" / "zebra" / "X.JPG")  # suffixes in any case
    (root / "train" / "zebra" / "notes.txt").write_text("not an image")
    (root / "train" / "zebra" / ".hidden.png").write_bytes(b"")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / "zebra" / ".thumbs").mkdir()
    data = build_dataset(dataset_config("folder", {"path": "mine"}), tmp_path)  # relative to --data-root
    assert data.classnames == ["Cat", "apple_tree", "zebra"]
    assert data.train_class_counts.tolist() == [4, 2, 4] and data.test.labels.tolist() == [0, 1, 2]
    assert data.train.rel_paths[-4:] == ["zebra/000.png", "zebra/001.png", "zebra/002.png", "zebra/X.JPG"]
    assert data.train.load(4).getpixel((0, 0)) == (40, 0, 0)  # apple_tree was written as class 1
    summary = data.summary()
    assert summary["name"] == "folder" and summary["groups"] == {"many": 0, "medium": 0, "few": 3}
    assert check_images(data, decode=True) and data.fingerprint


def test_csv_classes_labels_paths_and_lines(tmp_path):
    rows = ['"img/a, b.png",1,train', "img/c.png,0,Train", "", "img/d.png,2,train", "img/e.png,0,test",
            "img/f.png,1,test", "img/g.png,2,test"]
    config = csv_config(tmp_path / "set", rows)
    for row in rows:
        if row:
            write_image(tmp_path / "set" / row.rsplit(",", 2)[0].strip('"'))
    data = build_dataset(config, "/nonexistent")
    assert data.classnames == ["cat", "dog", "sea_lion"]
    assert data.train.rel_paths == ["img/a, b.png", "img/c.png", "img/d.png"]
    assert data.train.labels.tolist() == [1, 0, 2] and data.train.line_numbers == [2, 3, 5]
    assert data.test.labels.tolist() == [0, 1, 2]
    assert data.train.load(0).size == (8, 8)  # the image root is the CSV's folder
    check_images(data)


def test_csv_columns_in_any_order_and_an_image_dir(tmp_path):
    for name in ("x.png", "y.png", "y2.png", "x2.png"):
        write_image(tmp_path / "pics" / name)
    files = write_csv(tmp_path / "lists", ["train,1,x.png,first", "test,0,y.png,second", "train,0,y2.png,third",
                                           "test,1,x2.png,fourth"], header="Split, Label ,PATH,note",
                      classnames=("a", "b"))
    data = build_dataset(dataset_config("csv", {**files, "image_dir": "pics"}), tmp_path)
    assert data.train.rel_paths == ["x.png", "y2.png"] and data.train.labels.tolist() == [1, 0]
    assert data.test.load(0).size == (8, 8)


@pytest.mark.parametrize("counts", [[12] * 5, [12, 12, 2, 12, 7]])
def test_cut_follows_the_cifar_lt_profile(tmp_path, counts):
    write_folder(tmp_path, counts)
    full = build_dataset(dataset_config("folder", {"path": str(tmp_path)}), "/nonexistent")
    data = build_dataset(dataset_config("folder", {"path": str(tmp_path), "imbalance_ratio": "10"}), "/nonexistent")
    expected = [min(n, target) for n, target in zip(counts, cifar_lt_profile(12, 5, 10))]
    assert data.train_class_counts.tolist() == expected
    assert set(data.train.rel_paths) <= set(full.train.rel_paths)
    assert data.train.rel_paths == sorted(data.train.rel_paths)  # kept in listing order
    assert data.test.rel_paths == full.test.rel_paths
    assert data.summary()["max_count"] == 12 and data.summary()["min_count"] == min(expected)


def test_cut_of_a_csv_set(tmp_path):
    config = csv_config(tmp_path, BALANCED_ROWS, imbalance_ratio="6")
    data = build_dataset(config, "/nonexistent")
    assert data.train_class_counts.tolist() == cifar_lt_profile(6, 3, 6) == [6, 2, 1]
    assert data.train.list_file == tmp_path / "data.csv"


def test_cut_is_seeded_and_changes_the_fingerprint(tmp_path):
    write_folder(tmp_path, [10, 10, 10])

    def build(**overrides):
        return build_dataset(dataset_config("folder", {"path": str(tmp_path), **overrides}), "/nonexistent")

    full, cut = build(), build(imbalance_ratio="4")
    again, other = build(imbalance_ratio="4", subsample_seed="0"), build(imbalance_ratio="4", subsample_seed="1")
    assert again.train.rel_paths == cut.train.rel_paths and again.fingerprint == cut.fingerprint
    assert other.train.rel_paths != cut.train.rel_paths and other.fingerprint != cut.fingerprint
    assert len({full.fingerprint, cut.fingerprint, other.fingerprint}) == 3
    assert other.train_class_counts.tolist() == cut.train_class_counts.tolist() == cifar_lt_profile(10, 3, 4)


def test_cut_keeps_at_least_one_image_per_class(tmp_path):
    write_folder(tmp_path, [4, 4, 4])
    data = build_dataset(dataset_config("folder", {"path": str(tmp_path), "imbalance_ratio": "100"}), "/x")
    assert int(4 * 0.1) == 0 and data.train_class_counts.tolist() == [4, 1, 1]


def test_a_ratio_of_one_keeps_everything(tmp_path):
    write_folder(tmp_path, [3, 1, 2])
    full = build_dataset(dataset_config("folder", {"path": str(tmp_path)}), "/x")
    same = build_dataset(dataset_config("folder", {"path": str(tmp_path), "imbalance_ratio": "1"}), "/x")
    assert same.fingerprint == full.fingerprint


def test_added_image_and_edited_csv_are_read_again(tmp_path):
    write_folder(tmp_path / "tree", [2, 2])
    config = dataset_config("folder", {"path": str(tmp_path / "tree")})
    assert build_dataset(config, "/x").train_class_counts.tolist() == [2, 2]
    time.sleep(0.01)
    write_image(tmp_path / "tree" / "train" / "class_1" / "new.png")
    assert build_dataset(config, "/x").train_class_counts.tolist() == [2, 3]
    config = csv_config(tmp_path / "set", BALANCED_ROWS)
    assert len(build_dataset(config, "/x").train) == 18
    time.sleep(0.01)
    (tmp_path / "set" / "data.csv").write_text("\n".join(["path,label,split", *BALANCED_ROWS[1:]]) + "\n")
    assert len(build_dataset(config, "/x").train) == 17 and len(build_dataset(config, "/x").test) == 3


@pytest.mark.parametrize("name, overrides, message", [
    ("folder", {}, r"no path given; set --set folder\.path=DIR"),
    ("csv", {"classnames_file": "c.txt"}, r"no path given; set --set csv\.path=FILE"),
    ("csv", {"path": "data.csv"}, r"no classnames_file given; set --set csv\.classnames_file=FILE"),
    ("folder", {"path": "nowhere"}, r"folder: path not found: .*nowhere.*--set folder\.path=DIR"),
    ("csv", {"path": "nowhere.csv", "classnames_file": "c.txt"}, r"CSV file not found: .*nowhere\.csv"),
    ("csv", {"path": "nowhere.csv", "classnames_file": "missing.txt"}, r"class-name file not found: .*missing\.txt"),
])
def test_data_that_is_not_given_or_not_there(tmp_path, name, overrides, message):
    (tmp_path / "c.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=message):
        build_dataset(dataset_config(name, overrides), tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda root: write_image(root / "train" / "extra" / "0.png"), r"only in .*train: 'extra'"),
    (lambda root: write_image(root / "test" / "more" / "0.png"), r"only in .*test: 'more'"),
    (lambda root: (root / "train" / "class_1" / "000.png").rename(root / "train" / "class_1" / "000.gif"),
     r"1 class folder\(s\) in .*train hold no image \(\.jpg.*\): 'class_1'; add images or delete the folder"),
    (lambda root: write_image(root / "train" / "class_0" / "sub" / "0.png"),
     r"class_0 holds the subfolder\(s\) 'sub': images must lie directly in their class folder"),
    (lambda root: (root / "test").rename(root / "val"), r"test_dir not found: .*test.*folder\.test_dir=NAME"),
])
def test_bad_folder_trees(tmp_path, change, message):
    write_folder(tmp_path, [1, 1])
    change(tmp_path)
    with pytest.raises(DataError, match=message):
        build_dataset(dataset_config("folder", {"path": str(tmp_path)}), "/x")


def test_folder_refuses_testing_on_the_training_images_and_a_single_class(tmp_path):
    write_folder(tmp_path, [1, 1])
    with pytest.raises(DataError, match="train_dir and test_dir are the same folder"):
        build_dataset(dataset_config("folder", {"path": str(tmp_path), "test_dir": "./train"}), "/x")
    write_folder(tmp_path / "one", [2])
    with pytest.raises(DataError, match=r"one/train: 1 class\(es\) found; a classifier needs at least two"):
        build_dataset(dataset_config("folder", {"path": str(tmp_path / "one")}), "/x")


@pytest.mark.parametrize("row, message", [
    ("a.png,1", r"data\.csv, line 3: expected 3 fields as in the header row, got 2"),
    ("a.png,one,train", r"data\.csv, line 3: expected an integer label, got 'one'"),
    ("a.png,3,train", r"data\.csv, line 3: label 3 outside 0\.\.2 \(3 classes in .*classnames\.txt\)"),
    ("a.png,-1,test", r"data\.csv, line 3: label -1 outside 0\.\.2"),
    ("a.png,1,val", r"data\.csv, line 3: split 'val' is neither 'train' nor 'test'"),
    (",1,train", r"data\.csv, line 3: empty path"),
    ("img/train/0_0.png,0,train", r"data\.csv, lines 2 and 3: 'img/train/0_0\.png' is listed twice"),
    ("./img/train/0_0.png,1,test", r"lines 2 and 3: '\./img/train/0_0\.png' is in both the train and the test split"),
    ('"unclosed.png,1,train', r"data\.csv, line 3: expected 3 fields"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path, row, message):
    config = csv_config(tmp_path, [BALANCED_ROWS[0], row, *BALANCED_ROWS[1:]])
    with pytest.raises(DataError, match=message):
        build_dataset(config, "/x")


@pytest.mark.parametrize("header, rows, message", [
    ("path,label", ["a.png,0"], r"data\.csv, line 1: no split column: a test split is required"),
    ("file,label,split", ["a.png,0,train"], r"line 1: expected the header row path,label,split, got 'file,label"),
    ("path,label,split", [r for r in BALANCED_ROWS if "test" not in r], r"csv: no test images in .*data\.csv"),
    ("path,label,split", [r for r in BALANCED_ROWS if not r.startswith("img/train/2")],
     r"1 of 3 classes have no image in the train split .*data\.csv: 2 'sea_lion'"),
])
def test_bad_csv_files(tmp_path, header, rows, message):
    files = write_csv(tmp_path, rows, header=header)
    with pytest.raises(DataError, match=message):
        build_dataset(dataset_config("csv", files), "/x")


def test_csv_with_a_single_class_or_none_at_all(tmp_path):
    files = write_csv(tmp_path, BALANCED_ROWS, classnames=("only",))
    with pytest.raises(DataError, match=r"classnames\.txt: 1 class\(es\) found"):
        build_dataset(dataset_config("csv", files), "/x")
    (tmp_path / "classnames.txt").write_text("a\nb\n")
    (tmp_path / "data.csv").write_text("\n\n")
    with pytest.raises(DataError, match=r"data\.csv is empty; expected the header row path,label,split"):
        build_dataset(dataset_config("csv", files), "/x")


def test_missing_csv_image_is_found_before_training(tmp_path):
    config = csv_config(tmp_path, BALANCED_ROWS)
    data = build_dataset(config, "/x")
    with pytest.raises(DataError, match=r"image not found: .*0_0\.png \(listed in .*data\.csv, line 2\)"):
        check_images(data)


def test_run_on_a_folder_records_the_cut_and_the_classes(tmp_path):
    tree = write_folder(tmp_path / "tree", [6, 6, 6], names=["red_fox", "blue", "green"], test_per_class=2)
    out = tmp_path / "run"
    code = main(["--datasets", "folder", "--set", f"folder.path={tree}", "folder.imbalance_ratio=3", "--regimes",
                 "linear_probe", "--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "--epochs",
                 "1", "--out", str(out), "-q", "--no-report"])
    assert code == 0
    result = json.loads(next((out / "jobs").glob("*.json")).read_text())
    assert result["status"] == "ok"
    assert result["config"]["dataset_config"]["imbalance_ratio"] == 3.0
    assert result["config"]["dataset_config"]["subsample_seed"] == 0
    assert result["dataset"]["classnames"] == ["blue", "green", "red_fox"]
    assert result["dataset"]["train_class_counts"] == cifar_lt_profile(6, 3, 3) == [6, 3, 2]
    assert len(result["metrics"]["test"]["per_class_acc"]) == 3
