"""--save-weights and bench.load_job: the rebuilt model predicts what the job recorded, to the bit (CPU)."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import bench
from bench.cli import main
from bench.data import build_dataset
from bench.results import RunStore
from bench.scheduler.execute import execute
from bench.training import Runtime
from bench.training.context import JobContext
from bench.training.engine import evaluate
from bench.weights import INITIAL, WeightsFileError
from tests.conftest import make_job
from tests.test_cli import TINY

REGIMES = ["linear_probe", "lora", "lift_plus", "full"]
SMALL = {"num_classes": 8, "max_per_class": 40, "imbalance_ratio": 8.0, "test_per_class": 4}  # ~120 train images


def trained(run_dir, regime: str, content: str | None = "trainable"):
    """A 1-epoch tiny-model job of `regime` run and saved in `run_dir` (weights kept as `content`)."""
    runtime = Runtime(device="cpu", run_dir=str(run_dir), train_eval=False, save_weights=content)
    job = make_job(regime, epochs=1, data_overrides=SMALL, runtime=runtime)
    result = execute(job, run_dir)
    assert result.status == "ok", getattr(result, "error", None)
    return job, result


def rebuilt_predictions(job, model) -> dict:
    """The test split's predicted classes and their logits through `model`, as the engine computes them, with no
    run folder (no cached features: the rebuilt tower computes its own)."""
    job = dataclasses.replace(job, runtime=dataclasses.replace(job.runtime, run_dir=None))
    data = build_dataset(job.dataset_config, job.runtime.data_root)
    _, extracted = evaluate(model, data, "test", "tte" if job.recipe.tte else "test", JobContext.create(job))
    return extracted


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """regime -> (run folder, job, result), every regime in a folder of its own."""
    found = {}
    for regime in REGIMES + ["zero_shot"]:
        run_dir = tmp_path_factory.mktemp(regime)
        found[regime] = (run_dir, *trained(run_dir, regime))
    return found


@pytest.mark.parametrize("regime", REGIMES)
def test_rebuilt_model_predicts_the_recorded_test_predictions(runs, regime):
    run_dir, job, result = runs[regime]
    model = bench.load_job(run_dir, job.job_id)
    assert not model.training
    recorded = RunStore(run_dir).read_predictions(job.job_id)
    rebuilt = rebuilt_predictions(job, model)
    assert len(recorded["test"]) == result.metrics["test"]["num_samples"]
    assert np.array_equal(rebuilt["predictions"], recorded["test"])
    assert np.array_equal(rebuilt["top_logits"], recorded["test_logit"])  # the logits, to the bit
    with safe_open(str(run_dir / result.weights["file"]), framework="pt") as fh:
        names = set(fh.keys())
        saved = {name: fh.get_tensor(name) for name in names}
    state = model.state_dict()
    trainable = {name for name, _ in model.trainable_parameters()}
    assert {name for name in names if not name.startswith(INITIAL)} == trainable
    for name in trainable:
        assert torch.equal(state[name], saved[name])
    assert not torch.equal(saved["head.weight"], saved[INITIAL + "head.weight"])  # the head trained


def test_metadata_names_the_job_and_the_json_records_the_file(runs):
    run_dir, job, result = runs["lora"]
    record = result.weights
    path = run_dir / record["file"]
    assert record["file"] == f"weights/{job.job_id}.safetensors"
    assert record["bytes"] == path.stat().st_size and record["content"] == "trainable"
    assert record["tensors"] == len(result.params["trainable_tensors"])
    assert record["initial_tensors"] == len(result.params["trainable_tensors"])  # the head's and every LoRA tensor's
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["job_id"] == job.job_id and meta["regime"] == "lora" and meta["content"] == "trainable"
    assert (meta["model"], meta["pretrained"], meta["quick_gelu"]) == ("ltbench-tiny", "none", "false")
    assert meta["dataset"] == "synthetic_lt" and meta["ltbench_version"] == bench.__version__
    assert int(meta["num_classes"]) == len(json.loads(meta["classnames"])) == result.dataset["num_classes"]
    assert json.loads(meta["recipe"])["rank"] == result.resolved.get("rank", job.recipe.rank)
    assert json.loads(meta["config"]) == job.config()
    assert json.loads(meta["trainable"]) == result.params["trainable_tensors"]
    saved = json.loads((run_dir / "jobs" / f"{job.job_id}.json").read_text())
    assert saved["weights"] == record and saved["predictions"]["file"] == f"predictions/{job.job_id}.npz"


def test_all_keeps_the_whole_state_and_loads_strictly(tmp_path, runs):
    job, result = trained(tmp_path, "lora", "all")
    model = bench.load_job(tmp_path, job.job_id)
    with safe_open(str(tmp_path / result.weights["file"]), framework="pt") as fh:
        names = {name for name in fh.keys() if not name.startswith(INITIAL)}
    assert names == set(model.state_dict()) and result.weights["content"] == "all"
    assert result.weights["bytes"] > runs["lora"][2].weights["bytes"]
    rebuilt = rebuilt_predictions(job, model)
    assert np.array_equal(rebuilt["top_logits"], RunStore(tmp_path).read_predictions(job.job_id)["test_logit"])


def test_zero_shot_saves_nothing_and_rebuilds_from_its_config(runs):
    run_dir, job, result = runs["zero_shot"]
    assert result.weights["file"] is None and "nothing to save" in result.weights["reason"]
    assert not (run_dir / "weights").exists()
    rebuilt = rebuilt_predictions(job, bench.load_job(run_dir, job.job_id))
    assert np.array_equal(rebuilt["predictions"], RunStore(run_dir).read_predictions(job.job_id)["test"])


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "damaged"),  # truncated
    (lambda data: data[:-8] + bytes(b ^ 0xFF for b in data[-8:]), "damaged"),  # a flipped tensor value
    (lambda data: b"not a safetensors file", "damaged"),
    (None, "missing"),
])
def test_a_damaged_or_missing_weights_file_is_refused(tmp_path, runs, damage, message):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(runs["linear_probe"][0], run_dir)
    job_id = runs["linear_probe"][1].job_id
    path = RunStore(run_dir).weights_path(job_id)
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(WeightsFileError, match=message) as info:
        bench.load_job(run_dir, job_id)
    assert "--save-weights --force" in str(info.value)


def test_unknown_job_and_job_without_weights_are_refused(tmp_path, runs):
    run_dir = runs["lora"][0]
    with pytest.raises(WeightsFileError, match="no job 0123456789abcdef"):
        bench.load_job(run_dir, "0123456789abcdef")
    job, _ = trained(tmp_path, "linear_probe", None)
    with pytest.raises(WeightsFileError, match="ran without --save-weights"):
        bench.load_job(tmp_path, job.job_id)


def test_finished_jobs_without_weights_are_refused_then_retrained_with_force(tmp_path, capsys):
    small = [f"synthetic_lt.{name}={value}" for name, value in SMALL.items()]
    command = ["--datasets", "synthetic_lt", "--regimes", "zero_shot", "linear_probe", "--out", str(tmp_path),
               *TINY, "--epochs", "1", "--no-train-eval", "--set", *small]
    assert main(command) == 0
    ids = sorted(path.stem for path in (tmp_path / "jobs").glob("*.json"))
    capsys.readouterr()
    assert main(command + ["--save-weights"]) == 2  # the same job ids: finished, without weights
    err = capsys.readouterr().err
    assert "ltbench: error: --save-weights trainable: 1 finished jobs" in err and "linear_probe" in err
    assert "--force" in err and "Traceback" not in err
    assert not (tmp_path / "weights").exists()
    assert main(command + ["--save-weights", "--force"]) == 0
    assert sorted(path.stem for path in (tmp_path / "jobs").glob("*.json")) == ids  # ids unchanged by the option
    out = capsys.readouterr().out
    weights = list((tmp_path / "weights").glob("*.safetensors"))
    assert len(weights) == 1 and f"weights: 1 files, {weights[0].stat().st_size / 2**20:.1f} MB" in out
    assert main(command + ["--save-weights"]) == 0  # now every job has them: nothing refused, nothing retrained
    assert main(command + ["--save-weights", "all"]) == 2  # trainable ones do not hold the whole state


def test_save_weights_choices_are_checked(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--datasets", "synthetic_lt", *TINY, "--save-weights", "some"])
    assert info.value.code == 2 and "invalid choice: 'some'" in capsys.readouterr().err
