"""Plugins (bench/plugins.py): a file, a module or an installed entry point registers regimes, data sets and losses
that run, are identified and are reported like the built-ins; a bad plugin stops the run before training."""
import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from bench import plugins
from bench.cli import main
from bench.data import DATASETS
from bench.plan import Selection, plan
from bench.registry import LOSSES, REGIMES
from bench.training import Runtime
from tests.conftest import REPO

TINY = ["--model", "ltbench-tiny", "--pretrained", "none", "--device", "cpu", "-q", "--no-report", "--epochs", "1",
        "--no-train-eval"]
EXAMPLE = REPO / "examples" / "ia3_plugin.py"

# a plugin with a data set and a regime whose recipe are its own classes: a child process must import the plugin
# before it can unpickle the job
OWN_CLASSES = '''
from dataclasses import dataclass

from bench.data import register_dataset
from bench.data.synthetic import SyntheticLT
from bench.fields import setting
from bench.training.recipe import Recipe
from regimes.base import Regime, register_regime


@register_dataset("small_synthetic")
@dataclass(frozen=True)
class SmallSynthetic(SyntheticLT):
    num_classes: int = setting(10, low=2, high=20, help="classes")
    max_per_class: int = setting(30, low=1, high=100, help="training images of the largest class")
    imbalance_ratio: float = setting(10.0, low=1, help="largest over smallest class")
    test_per_class: int = setting(4, low=1, high=100, help="test images per class")


@dataclass(frozen=True)
class HeadRecipe(Recipe):
    head_note: str = setting("plain", help="a setting of the plugin's own recipe class")


@register_regime("head_only")
class HeadOnly(Regime):
    summary = "the classifier alone, from a plugin"
    recipe = HeadRecipe()
'''
LOSS_MODULE = '''
from torch import nn

from bench.training.losses import register_loss


@register_loss("plain_ce")
def plain_ce(recipe, counts):
    return nn.CrossEntropyLoss()
'''


@pytest.fixture(autouse=True)
def built_ins_only(monkeypatch):
    """Every test starts from the built-in registries and no plugin loaded, and leaves them so."""
    saved = {}
    for registry in (REGIMES, DATASETS, LOSSES):
        registry.names()  # the built-ins registered
        saved[registry] = dict(registry._entries)
        monkeypatch.setattr(registry, "_entries", dict(saved[registry]))
    monkeypatch.setattr(plugins, "_LOADED", {})

    def reset():
        for registry, entries in saved.items():
            registry._entries = dict(entries)
        plugins._LOADED.clear()

    return reset


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """Write a module into a folder on sys.path, this process's and its children's; forget it afterwards."""
    names = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))

    def write(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return tmp_path

    yield write
    for name in names:
        sys.modules.pop(name, None)


def _plugin_file(tmp_path, source: str, name: str = "my_plugin"):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _jobs(run):
    return {(c["config"]["dataset"], c["config"]["regime"]): c
            for c in (json.loads(p.read_text()) for p in (run / "jobs").glob("*.json"))}


def _planned_ids(regimes, datasets=("synthetic_lt",)):
    selection = Selection(datasets=datasets, regimes=tuple(regimes), model="ltbench-tiny", pretrained="none")
    return {(job.dataset, job.regime): job for job in plan(selection, Runtime(device="cpu")).jobs}


def test_the_readme_example_is_the_example_file():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", readme.split("\n### Benchmark your own method\n", 1)[1], 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert block == EXAMPLE.read_text(encoding="utf-8")


def test_the_example_plugin_runs_on_the_demo_data_like_a_built_in(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["--plugin", str(EXAMPLE), "--regimes", "my_ia3", "zero_shot", "--out", str(run),
                 "--set", "demo_lt.num_classes=10", "demo_lt.max_per_class=20", "demo_lt.imbalance_ratio=10",
                 "demo_lt.test_per_class=5", "--epochs", "1", "--no-train-eval", "--device", "cpu", "-q",
                 "--no-report"])
    assert code == 0
    assert re.search(r"demo_lt\s+my_ia3\s+0\s+ok", capsys.readouterr().out)
    jobs = _jobs(run)
    ia3 = jobs["demo_lt", "my_ia3"]
    assert ia3["status"] == "ok" and ia3["params"]["backbone_trainable"] > 0
    digest = plugins._sha256([EXAMPLE], EXAMPLE.parent)
    assert ia3["config"]["plugins"] == [{"name": "ia3_plugin", "sha256": digest}]
    assert "plugins" not in jobs["demo_lt", "zero_shot"]["config"]
    recorded = json.loads((run / "manifest.json").read_text())["plans"][-1]["plugins"]
    assert recorded == [{"name": "ia3_plugin", "kind": "file", "spec": str(EXAMPLE), "sha256": digest,
                         "regimes": ["my_ia3"], "datasets": [], "losses": []}]


def test_a_plugin_regime_is_listed_and_in_regimes_all(capsys):
    assert main(["list", "--plugin", str(EXAMPLE)]) == 0
    assert "my_ia3: IA3: scaled keys, values and MLP hidden units + classifier" in capsys.readouterr().out
    assert "my_ia3" in Selection(regimes=("all",)).regime_names()


def test_editing_a_plugin_makes_new_jobs_and_leaves_built_in_ids_alone(tmp_path, built_ins_only):
    before = {key: job.job_id for key, job in _planned_ids(["lora", "full"]).items()}
    path = _plugin_file(tmp_path, EXAMPLE.read_text())
    plugins.load_plugins([str(path)])
    first = _planned_ids(["my_ia3", "lora", "full"])
    assert {key: first[key].job_id for key in before} == before
    assert "plugins" not in first["synthetic_lt", "lora"].config()
    path.write_text(EXAMPLE.read_text().replace("torch.ones(channels)", "torch.full((channels,), 0.5)"))
    built_ins_only()
    plugins.load_plugins([str(path)])
    edited = _planned_ids(["my_ia3", "lora"])
    assert edited["synthetic_lt", "my_ia3"].job_id != first["synthetic_lt", "my_ia3"].job_id
    assert edited["synthetic_lt", "lora"].job_id == before["synthetic_lt", "lora"]


def test_a_file_plugin_with_its_own_classes_runs_in_child_processes(tmp_path, capsys):
    """Its module has a name of its own, importable only through the plugin: the child imports it first."""
    path = _plugin_file(tmp_path, OWN_CLASSES)
    run = tmp_path / "run"
    code = main(["--plugin", str(path), "--datasets", "small_synthetic", "--regimes", "head_only", "--workers", "2",
                 "--out", str(run), *TINY])
    assert code == 0, capsys.readouterr()
    (job,) = _jobs(run).values()
    assert job["status"] == "ok" and job["config"]["recipe"]["head_note"] == "plain"
    assert [p["name"] for p in job["config"]["plugins"]] == ["my_plugin"]


def test_a_job_cloudpickled_for_ray_unpickles_where_only_its_plugin_spec_is_known(tmp_path):
    """Ray ships a task's arguments with cloudpickle, which pickles the plugin's classes by reference: a fresh
    interpreter can unpickle the job only because the job imports its plugins first."""
    cloudpickle = pytest.importorskip("cloudpickle")
    path = _plugin_file(tmp_path, OWN_CLASSES)
    plugins.load_plugins([str(path)])
    (job,) = _planned_ids(["head_only"], datasets=("small_synthetic",)).values()
    job = dataclasses.replace(job, runtime=dataclasses.replace(job.runtime, plugins=(str(path),)))
    script = "import pickle, sys; job = pickle.load(sys.stdin.buffer); print(job.job_id, type(job.recipe).__name__)"
    out = subprocess.run([sys.executable, "-c", script], input=cloudpickle.dumps(job), capture_output=True,
                         cwd=REPO, check=True)
    assert out.stdout.decode().split() == [job.job_id, "HeadRecipe"]


def test_a_module_plugin_registers_its_data_set_and_regime(importable, capsys):
    importable("my_head_plugin", OWN_CLASSES)
    assert main(["list", "--plugin", "my_head_plugin"]) == 0
    out = capsys.readouterr().out
    assert "\nsmall_synthetic\n" in out and "head_only: the classifier alone, from a plugin" in out
    (plugin,) = plugins.load_plugins(["my_head_plugin"])
    assert (plugin.kind, plugin.regimes, plugin.datasets) == ("module", ("head_only",), ("small_synthetic",))
    job = _planned_ids(["head_only", "lora"], datasets=("synthetic_lt", "small_synthetic"))
    assert job["small_synthetic", "lora"].plugins == job["synthetic_lt", "head_only"].plugins == (
        ("my_head_plugin", plugin.sha256),)
    assert job["synthetic_lt", "lora"].plugins == ()


def test_an_installed_entry_point_plugin_loads_without_being_named(tmp_path, importable, capsys):
    site = importable("my_ltbench_losses", LOSS_MODULE)
    dist = site / "my_ltbench_losses-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ltbench-losses\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ltbench.plugins]\nplain = my_ltbench_losses\n")
    run = tmp_path / "run"
    code = main(["--datasets", "synthetic_lt", "--regimes", "linear_probe", "--set", "linear_probe.loss=plain_ce",
                 "--out", str(run), *TINY])
    assert code == 0, capsys.readouterr()
    (job,) = _jobs(run).values()
    assert job["status"] == "ok" and job["config"]["recipe"]["loss"] == "plain_ce"
    assert [p["name"] for p in job["config"]["plugins"]] == ["plain"]
    recorded = json.loads((run / "manifest.json").read_text())["plans"][-1]["plugins"]
    assert [(p["name"], p["kind"], p["losses"]) for p in recorded] == [("plain", "entry point", ["plain_ce"])]


def test_a_loss_without_its_plugin_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--datasets", "synthetic_lt", "--regimes", "linear_probe", "--set", "linear_probe.loss=plain_ce",
              "--out", str(tmp_path / "run"), *TINY])
    assert info.value.code == 2
    assert "loss 'plain_ce' is not one of bs, cb, ce" in capsys.readouterr().err


@pytest.mark.parametrize("source, message", [
    (None, r"--plugin {path}: no such file \(or not a file\); give the path of a \.py file"),
    ("def broken(:\n", r"--plugin {path} failed to import: SyntaxError: .*\(.*my_plugin\.py, line 1\); fix the "
                       r"plugin file, or leave out --plugin {path}"),
    ("import not_a_module_anywhere\n", r"--plugin {path} failed to import: ModuleNotFoundError: No module named "
                                       r"'not_a_module_anywhere' \(.*my_plugin\.py, line 1\); fix the plugin file"),
    ("import torch\n\nx = torch.nope\n", r"--plugin {path} failed to import: AttributeError: module 'torch' has no "
                                       r"attribute 'nope' \(.*my_plugin\.py, line 3\); fix the plugin file"),
    ("from regimes.base import Regime, register_regime\n\n@register_regime('lora')\nclass Mine(Regime):\n"
     "    pass\n", r"--plugin {path} registers the regime 'lora', a name ltbench already has; rename it"),
    ("x = 1\n", r"--plugin {path} registers no regime, data set or loss; decorate its classes with "
                r"@register_regime, @register_dataset or @register_loss"),
])
def test_a_bad_plugin_file_exits_2_with_one_line_naming_the_fix(tmp_path, capsys, source, message):
    path = tmp_path / "my_plugin.py"
    if source is not None:
        path.write_text(source)
    assert main(["--plugin", str(path), "--datasets", "synthetic_lt", "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.fullmatch(r"ltbench: error: " + message.format(path=re.escape(str(path))) + r".*", err.strip())
    assert not (tmp_path / "run").exists()


def test_a_missing_module_and_a_name_another_plugin_took_exit_2(tmp_path, importable, capsys):
    assert main(["list", "--plugin", "no_such_plugin_module"]) == 2
    assert ("ltbench: error: --plugin no_such_plugin_module: no such file or module; give the path of a .py file, "
            "or install the package that provides the module no_such_plugin_module") in capsys.readouterr().err
    importable("my_head_plugin", OWN_CLASSES)
    again = _plugin_file(tmp_path, OWN_CLASSES, "copy_of_it")
    assert main(["list", "--plugin", "my_head_plugin", "--plugin", str(again)]) == 2
    assert (f"--plugin {again} registers the dataset 'small_synthetic', a name plugin my_head_plugin already has; "
            f"rename it in the plugin") in capsys.readouterr().err
