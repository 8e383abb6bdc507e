"""The battery of bad inputs and faults (README, "What ltbench checks"): one row per case, each asserting the
exit code, that the message names the problem, and that what a run had already finished survives."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from bench.cli import main
from tests.data.test_cifar import write_cifar100
from tests.data.test_split_files import write_tree
from tests.data.test_images import refused_image
from tests.data.test_options import KINDS as UNTESTED
from tests.data.test_user_data import write_csv, write_image
from tests.reports.test_load import damage, kept_apart

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run folder with finished jobs, results.csv and a report: every case runs against a copy of it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
                 "--no-train-eval", "--out", str(out), *TINY]) == 0
    return out


def _digest(run: Path) -> dict[str, str]:
    """What must survive a bad command: every finished job's JSON, results.csv and the report."""
    files = sorted(run.glob("jobs/*.json")) + [run / "results.csv", run / "report.html"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _places(root: Path) -> Path:
    write_tree(root, "places_lt")
    return root / "Places_LT"


def _edit(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")


def missing_test_image(root: Path) -> list[str]:
    _places(root)
    (root / "Places" / "val/class2/Places365_val_20.jpg").unlink()
    return ["--datasets", "places_lt", "--data-root", str(root)]


def truncated_test_image(root: Path) -> list[str]:
    _places(root)
    image = root / "Places" / "val/class1/Places365_val_10.jpg"
    image.write_bytes(image.read_bytes()[:200])
    return ["--datasets", "places_lt", "--data-root", str(root), "--verify-images"]


def missing_train_image(root: Path) -> list[str]:
    _places(root)
    (root / "Places" / "train/class0/00000001.jpg").unlink()
    return ["--datasets", "places_lt", "--data-root", str(root)]


def empty_class(root: Path) -> list[str]:
    split = _places(root)
    _edit(split / "train.txt", lambda lines: [line for line in lines if not line.endswith(" 2")])
    return ["--datasets", "places_lt", "--data-root", str(root)]


def duplicate_line(root: Path) -> list[str]:
    split = _places(root)
    _edit(split / "train.txt", lambda lines: lines + [lines[0]])
    return ["--datasets", "places_lt", "--data-root", str(root)]


def undecodable_classnames(root: Path) -> list[str]:
    split = _places(root)
    (split / "classnames.txt").write_bytes("first\nsecond\nthird\n".encode("utf-16"))
    return ["--datasets", "places_lt", "--data-root", str(root)]


def cifar_label_out_of_range(root: Path) -> list[str]:
    write_cifar100(root, per_class=20, test_per_class=2)
    path = root / "cifar-100-python" / "test"
    with open(path, "rb") as fh:
        entry = pickle.load(fh)
    entry["fine_labels"][3] = 100
    with open(path, "wb") as fh:
        pickle.dump(entry, fh)
    return ["--datasets", "cifar100_lt", "--data-root", str(root)]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def crafted_cifar_pickle(root: Path) -> list[str]:
    write_cifar100(root, per_class=20, test_per_class=2)
    with open(root / "cifar-100-python" / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": _Exploit()}, fh)
    return ["--datasets", "cifar100_lt", "--data-root", str(root)]


def out_is_a_file(root: Path) -> list[str]:
    (root / "file").write_text("not a folder")
    return ["--datasets", "synthetic_lt", "--out", str(root / "file" / "run")]


def out_read_only(root: Path) -> list[str]:
    return ["--datasets", "synthetic_lt", "--out", "/proc/ltbench-run"]


@dataclass(frozen=True)
class Case:
    name: str
    args: Callable[[Path], list[str]] | list[str]
    message: str  # a regular expression the error output must match
    code: int = 2


def _grid_file(root: Path, text: str, name: str = "g") -> str:
    path = root / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def grid_with(text: str, *options: str) -> Callable[[Path], list[str]]:
    """A run of one grid file holding `text`, with `options`."""
    return lambda root: ["--datasets", "synthetic_lt", "--grid", _grid_file(root, text), *options]


def grids_sharing_a_name(root: Path) -> list[str]:
    first = _grid_file(root, "name: same\nregime: lora\naxes:\n  rank: [2]\n", "a")
    second = _grid_file(root, "name: same\nregime: lora\naxes:\n  lr: [0.1]\n", "b")
    return ["--datasets", "synthetic_lt", "--grid", first, second]


def one_grid_twice(root: Path) -> list[str]:
    path = _grid_file(root, "regime: lora\naxes:\n  rank: [2]\n")
    return ["--datasets", "synthetic_lt", "--grid", path, path]


def untested_class(kind: str) -> Callable[[Path], list[str]]:
    """A `kind` data set with a class that has training images but no test image (tests.data.test_options)."""
    def args(root: Path) -> list[str]:
        settings = [f"{kind}.{field}={value}" for field, value in UNTESTED[kind][0](root).items()]
        return ["--datasets", kind, "--data-root", str(root)] + (["--set", *settings] if settings else [])
    return args


def validation_list_without_a_class(root: Path) -> list[str]:
    split = _places(root)
    write_image(root / "Places" / "val/class0/extra.jpg")
    (split / "val.txt").write_text("val/class0/extra.jpg 0\n")
    return ["--datasets", "places_lt", "--data-root", str(root), "--set", "places_lt.val_list=val.txt",
            "--regimes", "linear_probe", "--select", "lr=0.01,0.1"]


def verified_image_in_mode(mode: str) -> Callable[[Path], list[str]]:
    """--verify-images over a test list whose second line is an image in `mode` (one open_rgb refuses)."""
    def args(root: Path) -> list[str]:
        split = _places(root)
        refused_image(mode).save(root / "Places" / "val/class1/odd.tiff")
        _edit(split / "test.txt", lambda lines: [line.replace("Places365_val_10.jpg", "odd.tiff") for line in lines])
        return ["--datasets", "places_lt", "--data-root", str(root), "--verify-images"]
    return args


def csv_path(rel: str) -> Callable[[Path], list[str]]:
    """A CSV data set whose 8th line lists the image path `rel`."""
    def args(root: Path) -> list[str]:
        rows = [f"img/{c}_{i}.png,{c},{split}" for c in range(3) for i, split in enumerate(["train", "train", "test"])]
        for row in rows:
            write_image(root / "set" / row.split(",")[0])
        files = write_csv(root / "set", rows[:6] + [f"{rel},1,train"] + rows[6:])
        return ["--datasets", "csv", "--set", f"csv.path={files['path']}",
                f"csv.classnames_file={files['classnames_file']}"]
    return args


def split_file_path(name: str, rel: str) -> Callable[[Path], list[str]]:
    """The tiny `name` tree with `rel` listed on the last line of its training list (line 7)."""
    def args(root: Path) -> list[str]:
        split = write_tree(root, name)
        _edit(split / "train.txt", lambda lines: lines + [f"{rel} 0"])
        return ["--datasets", name, "--data-root", str(root)]
    return args


def ray_address_without_a_cluster(root: Path) -> list[str]:
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ["--datasets", "synthetic_lt", "--backend", "ray", "--ray-address", f"127.0.0.1:{port}"]


def download_into_a_file(root: Path) -> list[str]:
    """--download where the folder cannot be made: torchvision fails before it reaches the network."""
    (root / "file").write_text("not a folder")
    return ["--datasets", "cifar100_lt", "--download", "--data-root", str(root / "file" / "data")]


def report_on_damaged(folder: str, how: str = "garbage") -> Callable[[Path], list[str]]:
    """`report` on a finished run folder whose first file in `folder` is damaged (tests.reports.test_load)."""
    def args(root: Path) -> list[str]:
        damage(kept_apart(root / "run"), folder, how)
        return ["report", str(root / "run")]
    return args


def without_transformers(model: str, regimes: list[str]) -> Callable[[Path], list[str]]:
    """A model whose tokenizer or text tower open_clip builds with transformers, where it is not installed."""
    def args(root: Path) -> list[str]:
        if importlib.util.find_spec("transformers") is not None:
            pytest.skip("transformers is installed")
        return ["--datasets", "synthetic_lt", "--model", model, "--regimes", *regimes]
    return args


SYN = ["--datasets", "synthetic_lt"]
CASES = [
    Case("negative epochs", SYN + ["--epochs", "-3"], r"--epochs: must be >= 1 and <= 10000, got -3"),
    Case("zero epochs", SYN + ["--epochs", "0"], r"--epochs: must be >= 1 and <= 10000, got 0"),
    Case("zero epochs through --set", SYN + ["--set", "full.epochs=0"], r"full.epochs=0: a regime that trains"),
    Case("eval batch size 0", SYN + ["--eval-batch-size", "0"], r"--eval-batch-size: must be >= 1"),
    Case("micro-batch size 0", SYN + ["--micro-batch-size", "0"], r"--micro-batch-size: must be >= 1"),
    Case("batch size 0", SYN + ["--set", "all.batch_size=0"], r"batch_size must be >= 1 and <= 1048576, got 0"),
    Case("lora rank 0", SYN + ["--set", "lora.rank=0"], r"lora.rank must be >= 1 and <= 65536, got 0"),
    Case("infinite lr", SYN + ["--set", "bitfit.lr=inf"], r"bitfit.lr must be a finite number, got inf"),
    Case("NaN lr", SYN + ["--set", "bitfit.lr=nan"], r"bitfit.lr must be a finite number, got nan"),
    Case("negative weight decay", SYN + ["--set", "full.weight_decay=-1"], r"weight_decay must be >= 0"),
    Case("momentum 1", SYN + ["--set", "full.momentum=1"], r"full.momentum must be >= 0 and < 1, got 1"),
    Case("imbalance ratio 0", SYN + ["--set", "synthetic_lt.imbalance_ratio=0"], r"imbalance_ratio must be >= 1"),
    Case("imbalance ratio option 0", SYN + ["--imbalance-ratio", "0"], r"--imbalance-ratio: must be >= 1"),
    Case("partial blocks beyond the model", SYN + ["--regimes", "partial", "--set", "partial.blocks=99"],
         r"partial.blocks=99 but the model has 4 blocks"),
    Case("seed too large", SYN + ["--seeds", str(2**31)], r"--seeds: must be >= 0 and <= 2147483647, got 2147483648"),
    Case("negative seed", SYN + ["--seeds", "-1"], r"--seeds: must be >= 0 and <= 2147483647, got -1"),
    Case("a GPU that is not there", SYN + ["--gpus", "7", "--device", "auto"], r"--gpus 7: no GPU is visible"),
    Case("cuda:0 without a GPU", SYN + ["--device", "cuda:0"], r"--device cuda:0: there is no GPU 0"),
    Case("unknown protocol", SYN + ["--protocol", "nope"], r"invalid choice: 'nope'"),
    Case("missing test image", missing_test_image, r"Places365_val_20\.jpg.*test\.txt, line 3"),
    Case("truncated test image", truncated_test_image, r"Places365_val_10\.jpg.*test\.txt, line 2"),
    Case("missing train image", missing_train_image, r"00000001\.jpg.*train\.txt, line 2"),
    Case("class without training images", empty_class, r"third"),
    Case("duplicate split line", duplicate_line, r"train\.txt.*lines? 1 and 7"),
    Case("class names not UTF-8", undecodable_classnames, r"classnames\.txt.*UTF-8"),
    Case("CIFAR label out of range", cifar_label_out_of_range, r"cifar-100-python/test.*100"),
    Case("crafted CIFAR pickle", crafted_cifar_pickle, r"cifar-100-python/meta.*system"),
    Case("--out under a file", out_is_a_file, r"file/run"),
    Case("--out read-only", out_read_only, r"/proc/ltbench-run"),
    # protocols and defaults
    Case("paper protocol on jobs no script line ran", SYN + ["--protocol", "lift_plus_paper"],
         r"--protocol lift_plus_paper: LIFT-plus's published scripts ran none of the selected regimes and data sets "
         r"with ltbench-tiny \(none\).*ViT-B-16 \(openai\).*or use --protocol reference"),
    Case("LIFT's protocol on weights LIFT never used", ["--datasets", "imagenet_lt", "--regimes", "adaptformer",
                                                        "--model", "ViT-B-16", "--pretrained", "laion2b_s34b_b88k",
                                                        "--protocol", "lift_paper"],
         r"--protocol lift_paper: .* ran none .* with ViT-B-16 \(laion2b_s34b_b88k\)"),
    Case("resize filter that no reference used", SYN + ["--regimes", "lora", "--set", "lora.interpolation=nearest"],
         r"lora.interpolation: 'nearest' is not one of bicubic, bilinear"),
    Case("semantic init on a backbone without a text tower", SYN + [
        "--regimes", "linear_probe", "--model", "in21k_vit_b16", "--set", "linear_probe.classifier_init=semantic"],
         r"classifier_init=semantic needs a CLIP text tower, and in21k_vit_b16 .*"
         r"linear_probe.classifier_init=class_mean"),
    # --set scopes, precedence, bounds, grids and selection
    Case("coop context longer than the text context", SYN + ["--regimes", "coop", "--set", "coop.context_length=100"],
         r"coop.context_length=100 does not fit: the longest class prompt takes \d+ tokens and ltbench-tiny's text "
         r"context is 16 tokens .* set coop.context_length=\d+ or less"),
    Case("--set of a data set not in the run", ["--datasets", "cifar100_lt_ir50", "--set",
                                                "cifar100_lt.imbalance_ratio=10"],
         r"--set cifar100_lt.imbalance_ratio: cifar100_lt is not one of this run's data sets \(cifar100_lt_ir50\)"),
    Case("--set of another data set's option", SYN + ["--set", "places_lt.split_dir=/x"],
         r"places_lt is not one of this run's data sets \(synthetic_lt\)"),
    Case("--set of a regime not in the run", SYN + ["--regimes", "linear_probe", "--set", "lora.rank=4"],
         r"--set lora.rank: lora is neither in --regimes nor in a grid \(this run's regimes: linear_probe\)"),
    Case("--set of a regime beside a grid of another",
         grid_with("regime: lora\naxes:\n  rank: [2]\n", "--set", "vpt.length=2"),
         r"--set vpt.length: vpt is neither in --regimes nor in a grid \(this run's regimes: lora\)"),
    Case("one --set field given two values", SYN + ["--set", "all.lr=0.1", "all.lr=0.2"],
         r"--set all.lr is given twice \('0.1' and '0.2'\); keep one"),
    Case("--epochs where nothing trains", SYN + ["--regimes", "zero_shot", "--epochs", "3"],
         r"--epochs 3: none of the regimes zero_shot trains"),
    Case("--select-metric without --select", SYN + ["--select-metric", "few"],
         r"--select-metric few picks among --select candidates and there are none"),
    Case("lora rank above its bound", SYN + ["--regimes", "lora", "--set", "lora.rank=100000"],
         r"--set lora.rank must be >= 1 and <= 65536, got 100000"),
    Case("lora rank 1e30", SYN + ["--regimes", "lora", "--set", "lora.rank=1e30"],
         r"lora.rank: cannot read '1e30' as int \(a whole number"),
    Case("lora rank 8.0", SYN + ["--regimes", "lora", "--set", "lora.rank=8.0"],
         r"lora.rank: cannot read '8.0' as int"),
    Case("huge integer rank", SYN + ["--regimes", "lora", "--set", "lora.rank=" + "9" * 30],
         r"lora.rank must be >= 1 and <= 65536, got 9{30}"),
    Case("batch size above its bound", SYN + ["--set", f"all.batch_size={2**21}"],
         r"--set all.batch_size must be >= 1 and <= 1048576, got 2097152"),
    Case("vpt length above its bound", SYN + ["--regimes", "vpt", "--set", "vpt.length=70000"],
         r"vpt.length must be >= 1 and <= 65536"),
    Case("test margin above its bound", SYN + ["--regimes", "zero_shot", "--set", "zero_shot.expand=5000"],
         r"zero_shot.expand must be >= 0 and <= 1024"),
    Case("generated image side above its bound", SYN + ["--set", "synthetic_lt.image_size=100000"],
         r"synthetic_lt.image_size must be >= 8 and <= 1024, got 100000"),
    Case("grid rank 1.0e+30", grid_with("regime: lora\naxes:\n  rank: [2, 1.0e+30]\n"),
         r"grid g \(lora\).rank: cannot read '1e\+30' as int \(a whole number"),
    Case("grid bottleneck above its bound", grid_with("regime: adapter\naxes:\n  bottleneck: [4, 1000000000000]\n"),
         r"grid g \(adapter\).bottleneck must be >= 1 and <= 65536, got 1000000000000"),
    Case("--select rank above its bound", SYN + ["--regimes", "lora", "--set", "synthetic_lt.val_fraction=0.2",
                                               "--select", "rank=4,100000"],
         r"--select \(lora\).rank must be >= 1 and <= 65536, got 100000"),
    Case("--workers above its bound", SYN + ["--workers", "5000"], r"--workers: must be >= 1 and <= 1024, got 5000"),
    Case("--eval-batch-size above its bound", SYN + ["--eval-batch-size", str(2**21)],
         r"--eval-batch-size: must be >= 1 and <= 1048576"),
    Case("two grid files of one name", grids_sharing_a_name,
         r"grid files \S*a\.yaml and \S*b\.yaml are both named 'same'"),
    Case("one grid file twice", one_grid_twice, r"--grid \S*g\.yaml is given twice"),
    Case("grid with an empty axis", grid_with("regime: lora\naxes:\n  rank: []\n"),
         r"grid file \S*g\.yaml: axis 'rank' has no values"),
    Case("grid with an axis left blank", grid_with("regime: lora\naxes:\n  rank:\n  lr: [0.1]\n"),
         r"grid file \S*g\.yaml: axis 'rank' has no values"),
    Case("grid with a key twice", grid_with("regime: lora\naxes:\n  rank: [2]\n  lr: [0.1]\n  rank: [4]\n"),
         r"grid file \S*g\.yaml: key 'rank' is given twice \(lines 3 and 5\)"),
    Case("grid with a top-level key twice", grid_with("metric: few\nregime: lora\nmetric: top1\naxes:\n  rank: [2]\n"),
         r"grid file \S*g\.yaml: key 'metric' is given twice \(lines 1 and 3\)"),
    Case("grid with a value twice", grid_with("regime: lora\naxes:\n  rank: [2, 4, 2]\n"),
         r"grid file \S*g\.yaml: axis 'rank' lists 2 twice"),
    Case("grid with a misspelt key", grid_with("regime: lora\nmetrc: few\naxes:\n  rank: [2]\n"),
         r"grid file \S*g\.yaml: unknown key 'metrc'"),
    Case("grid naming its regime twice", grid_with("regime: lora\naxes:\n  regime: [vpt]\n  lr: [0.1]\n"),
         r"grid file \S*g\.yaml: names the regime twice"),
    Case("grid name that is a path", grid_with("name: ../escape\nregime: lora\naxes:\n  rank: [2]\n"),
         r"grid file \S*g\.yaml: name '\.\./escape' must be a plain file name"),
    Case("--select-metric many without a many-shot class",
         SYN + ["--regimes", "linear_probe", "--set", "synthetic_lt.val_fraction=0.2", "synthetic_lt.max_per_class=80",
                "synthetic_lt.imbalance_ratio=10", "--select", "lr=0.01,0.02", "--select-metric", "many"],
         r"--select-metric many: the validation split of synthetic_lt has no many-shot class .*mean_class_acc"),
    Case("--select-metric few without a few-shot class",
         SYN + ["--regimes", "linear_probe", "--set", "synthetic_lt.val_fraction=0.2", "synthetic_lt.imbalance_ratio=1",
                "--select", "lr=0.01,0.02", "--select-metric", "few"],
         r"--select-metric few: the validation split of synthetic_lt has no few-shot class .*many"),
    Case("grid metric without a class of its group",
         grid_with("metric: many\nregime: lora\naxes:\n  rank: [2]\n", "--set", "synthetic_lt.max_per_class=80",
                   "synthetic_lt.imbalance_ratio=10"),
         r"grid g: metric many: the test split of synthetic_lt has no many-shot class .*: top1, mean_class_acc, "
         r"medium, few"),
    Case("--imbalance-ratio on a variant named by its ratio", ["--datasets", "cifar100_lt_ir50", "--imbalance-ratio",
         "10"], r"cifar100_lt_ir50 is imbalance_ratio=50 by its name.*--set cifar100_lt.imbalance_ratio=10"),
    Case("--set the level of an iNaturalist level", ["--datasets", "inat2018_genus", "--set",
         "inat2018_genus.level=species"], r"inat2018_genus is level=genus by its name.*--set inat2018.level=species"),
    # data: untested classes, image modes, paths outside the image root
    *[Case(f"class without test images: {kind}", untested_class(kind),
           rf"{kind}: 1 of \d+ classes have no test images.*'{UNTESTED[kind][2]}'.*{kind}\.allow_untested_classes=true")
      for kind in sorted(UNTESTED)],
    Case("class without validation images", SYN + ["--set", "synthetic_lt.imbalance_ratio=150",
                                                    "synthetic_lt.val_fraction=0.1"],
         r"synthetic_lt: 2 of 20 classes have no validation images: 18 'brown checks'.*none to spare.*"
         r"synthetic_lt\.allow_untested_classes=true"),
    Case("selecting on a validation list without a class", validation_list_without_a_class,
         r"places_lt: 2 of 3 classes have no validation images: 1 'second', 2 'third'"),
    Case("allow_untested_classes not a boolean", SYN + ["--set", "synthetic_lt.allow_untested_classes=maybe"],
         r"synthetic_lt\.allow_untested_classes: cannot read 'maybe' as bool"),
    *[Case(f"{mode} image under --verify-images", verified_image_in_mode(mode),
           rf"odd\.tiff \(listed in .*test\.txt, line 2\): Pillow mode {mode} \(TIFF\)") for mode in ("F", "I", "LAB")],
    Case("CSV path climbing out of the image root", csv_path("../../etc/passwd"),
         r"data\.csv, line 8: the image path '\.\./\.\./etc/passwd' leaves the image root .*csv\.allow_outside_root"),
    Case("CSV path climbing out after a folder", csv_path("img/../../secret.png"),
         r"data\.csv, line 8: the image path 'img/\.\./\.\./secret\.png' leaves the image root"),
    Case("absolute CSV path", csv_path("/etc/passwd"), r"data\.csv, line 8: the image path '/etc/passwd' leaves"),
    Case("split-file path climbing out of the image root", split_file_path("places_lt", "../../etc/passwd"),
         r"Places_LT/train\.txt, line 7: the image path '\.\./\.\./etc/passwd' leaves the image root .*Places; "
         r".*places_lt\.allow_outside_root=true"),
    Case("absolute split-file path", split_file_path("inat2018", "/etc/passwd"),
         r"iNaturalist2018/train\.txt, line 7: the image path '/etc/passwd' leaves"),
    Case("allow_outside_root on a generated data set", SYN + ["--set", "synthetic_lt.allow_outside_root=true"],
         r"synthetic_lt has no setting 'allow_outside_root'"),
    # hangs and tracebacks: Ray, downloads, damaged report inputs, missing packages
    Case("nothing at --ray-address", ray_address_without_a_cluster,
         r"--ray-address 127\.0\.0\.1:\d+: no Ray cluster answers there .*`ray start --head`"),
    Case("--ray-address without a port", SYN + ["--backend", "ray", "--ray-address", "head-node"],
         r"--ray-address 'head-node': expected the HOST:PORT that `ray start --head` prints"),
    Case("--slurm-* option without --backend slurm", SYN + ["--slurm-partition", "gpu"],
         r"--slurm-partition is an option of --backend slurm: add --backend slurm or drop it"),
    Case("malformed --slurm-sbatch", SYN + ["--backend", "slurm", "--slurm-sbatch", "qos high"],
         r"--slurm-sbatch: expected KEY=VALUE with an sbatch long option name as KEY"),
    Case("--slurm-time past its bound", SYN + ["--backend", "slurm", "--slurm-time", "400-00:00:00"],
         r"--slurm-time: must be at least 1 minute and at most 366 days"),
    Case("--download that fails", download_into_a_file,
         r"--download: cannot fetch CIFAR-100 from https://www\.cs\.toronto\.edu/~kriz/cifar-100-python\.tar\.gz .*"
         r"NotADirectoryError.*tar xzf cifar-100-python\.tar\.gz -C .*cifar-100-python holds train, test and meta"),
    Case("report: truncated feature statistics", report_on_damaged("stats", "truncated"),
         r"the feature statistics .*/stats/\w+\.npz is damaged \(BadZipFile.*delete it and rerun "
         r"synthetic_lt/\w+/seed0 with --force"),
    Case("report: class means not a NumPy file", report_on_damaged("means"),
         r"the class means .*/means/\w+\.npy is damaged \(not a NumPy array file\); delete it and rerun"),
    Case("report: class means missing", report_on_damaged("means", "missing"),
         r"the class means .*/means/\w+\.npy is missing; rerun synthetic_lt/\w+/seed0 with --force"),
    Case("report: per-class arrays overwritten", report_on_damaged("arrays"),
         r"the per-class arrays .*/arrays/\w+\.npz is damaged \(not a NumPy array file\); delete it and rerun"),
    Case("report: damaged data-set summary", report_on_damaged("datasets"),
         r"the data-set summary .*/datasets/\w+\.json is damaged \(JSONDecodeError.*delete it and rerun"),
    Case("report: damaged result file", report_on_damaged("jobs"),
         r"the result file .*/jobs/\w+\.json is damaged .*rerun the run command that planned it"),
    Case("report: damaged grid file", report_on_damaged("grids"),
         r"the grid file .*/grids/lr\.json is damaged .*rerun the run command with that --grid"),
    Case("SigLIP's tokenizer without transformers", without_transformers("ViT-B-16-SigLIP", ["zero_shot"]),
         r"the tokenizer of ViT-B-16-SigLIP needs the transformers package, which is not installed: pip install "
         r"transformers"),
    Case("a Hugging Face text tower without transformers", without_transformers("roberta-ViT-B-32", ["zero_shot"]),
         r"the text tower of roberta-ViT-B-32 needs the transformers package, which is not installed: pip install "
         r"transformers"),
]


def exit_code(argv: list[str]) -> int:
    """main()'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_naming_the_problem_and_loses_nothing(case, finished_run, tmp_path, capsys,
                                                                 monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digest(run)
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.chdir(root)  # a crafted pickle would write PWNED here
    args = case.args(root) if callable(case.args) else list(case.args)
    argv = args if args[:1] == ["report"] else (  # the report command reads its run folder only
        (["--out", str(run)] if "--out" not in args else []) + TINY + args)  # the case's options win
    assert exit_code(argv) == case.code
    err = capsys.readouterr().err
    assert re.search(case.message, err, re.S), err
    assert "Traceback" not in err
    assert _digest(run) == before  # nothing already computed is lost or changed
    assert not (root / "PWNED").exists()


def test_non_finite_loss_is_recorded_and_the_run_goes_on_to_its_table_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--epochs", "1",
                 "--set", "linear_probe.lr=1e38", "linear_probe.classifier=linear",
                 "linear_probe.classifier_init=random", "--out", str(out), *TINY])
    assert code == 1
    err = capsys.readouterr().err
    assert "1 of 2 jobs failed" in err and "NonFiniteLossError" in err
    failed = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    assert sorted(r["status"] for r in failed) == ["failed", "ok"]
    table = pd.read_csv(out / "results.csv")
    assert sorted(table.status) == ["failed", "ok"]
    assert (out / "report.html").is_file() and (out / "report.pdf").is_file()


def test_failure_records_with_non_finite_values_are_saved(tmp_path):
    from bench.job_result import JobResult
    from bench.results import RunStore

    store = RunStore(tmp_path)
    store.save(JobResult("x", "x", {}, metrics={"test": {"top1": float("nan")}},
                         history=[{"lr": float("inf")}, {"lr": -float("inf")}]))
    saved = store.load("x")
    assert saved.metrics["test"]["top1"] == "nan" and [h["lr"] for h in saved.history] == ["inf", "-inf"]


def test_changed_split_or_image_makes_new_jobs_and_keeps_the_old(tmp_path, capsys):
    split = _places(tmp_path / "data")
    base = ["--datasets", "places_lt", "--data-root", str(tmp_path / "data"), "--regimes", "zero_shot",
            "--no-train-eval", "--no-report", "--out", str(tmp_path / "run"), *TINY]
    assert main(base) == 0
    first = {p.name for p in (tmp_path / "run" / "jobs").glob("*.json")}
    image = tmp_path / "data" / "Places" / "train/class2/00000001.jpg"
    shutil.copy(tmp_path / "data" / "Places" / "train/class2/00000000.jpg", image)
    _edit(split / "train.txt", lambda lines: lines + ["train/class2/00000001.jpg 2"])
    assert main(base) == 0
    second = {p.name for p in (tmp_path / "run" / "jobs").glob("*.json")}
    assert first < second and len(second) == 2  # a new job; the old result stays on disk
    os.utime(image, ns=(1, 1))  # the same file list, other image content
    assert main(base) == 0
    assert len(list((tmp_path / "run" / "jobs").glob("*.json"))) == 3
    results = [json.loads(p.read_text()) for p in (tmp_path / "run" / "jobs").glob("*.json")]
    assert len({r["config"]["data_fingerprint"] for r in results}) == 3
    newest = max((tmp_path / "run" / "jobs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    table = pd.read_csv(tmp_path / "run" / "results.csv")  # like the report, only the current data's job
    assert list(table.job_id) == [newest.stem]
    assert "Traceback" not in capsys.readouterr().err
