import pytest

from bench.cli import main
from bench.scheduler.execute import execute
from bench.tracking import JobTrackers, TrackingOptions, check_trackers, final_metrics, flat_params
from bench.training import Runtime
from tests.conftest import make_job
from tests.tracking.conftest import TRACKED, job_results, tensorboard_scalars

SMALL = {"num_classes": 4, "max_per_class": 40, "imbalance_ratio": 4.0, "test_per_class": 2}


def test_logging_changes_no_job_id(tmp_path):
    for folder, extra in (("plain", []), ("logged", ["--log", "tensorboard", "mlflow"])):
        assert main([*TRACKED, "--regimes", "zero_shot", "--out", str(tmp_path / folder), *extra]) == 0
    assert set(job_results(tmp_path / "plain")) == set(job_results(tmp_path / "logged"))
    assert (tmp_path / "logged" / "tensorboard").is_dir() and not (tmp_path / "plain" / "tensorboard").exists()


@pytest.mark.parametrize("option, tracker", [
    (["--wandb-project", "p"], "wandb"), (["--wandb-group", "g"], "wandb"), (["--wandb-offline"], "wandb"),
    (["--mlflow-uri", "file:///tmp/x"], "mlflow"), (["--mlflow-experiment", "e"], "mlflow")])
def test_a_trackers_option_without_the_tracker_exits_2(tmp_path, capsys, option, tracker):
    assert main([*TRACKED, "--regimes", "zero_shot", "--out", str(tmp_path / "run"), "--log", "tensorboard",
                 *option]) == 2
    err = capsys.readouterr().err
    assert f"ltbench: error: {option[0]} sets up the {tracker} tracker" in err and f"--log {tracker}" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "jobs").exists()


@pytest.mark.parametrize("tracker, module, extra", [
    ("tensorboard", "torch.utils.tensorboard", "tensorboard"), ("mlflow", "mlflow", "mlflow"),
    ("wandb", "wandb", "wandb")])
def test_a_missing_package_exits_2_with_its_install_line(tmp_path, capsys, monkeypatch, tracker, module, extra):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # import raises ImportError
    assert main([*TRACKED, "--regimes", "zero_shot", "--out", str(tmp_path / "run"), "--log", tracker]) == 2
    err = capsys.readouterr().err
    assert f"pip install -e '.[{extra}]'" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "jobs").exists()


def test_an_unknown_tracker_exits_2_naming_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*TRACKED, "--out", str(tmp_path / "run"), "--log", "neptune"])
    assert exit_.value.code == 2 and "tensorboard" in capsys.readouterr().err


def test_final_metrics_are_the_jsons_scalars_and_leave_missing_groups_out():
    metrics = {"test": {"top1": 50.0, "few": None, "num_samples": 8, "tte": False, "per_class_acc": [1.0]},
               "val": {"top1": 25.0}}
    assert final_metrics(metrics) == {"test/top1": 50.0, "test/num_samples": 8.0, "val/top1": 25.0}


def test_flat_params_keep_every_value_storable():
    assert flat_params({"recipe": {"lr": 0.1, "layers": (1, 2), "rank": None}, "seed": 0}) == {
        "recipe.lr": 0.1, "recipe.layers": "[1, 2]", "recipe.rank": "None", "seed": 0}


def test_an_interrupted_job_resumes_its_curves_without_logging_a_step_twice(tmp_path, monkeypatch):
    """Stopped two steps into its second epoch, the job resumes from its first epoch's checkpoint: TensorBoard
    and MLflow hold every step once, and their epoch losses are the JSON's."""
    from mlflow.tracking import MlflowClient

    runtime = Runtime(device="cpu", train_eval=False, run_dir=str(tmp_path),
                      tracking=TrackingOptions(trackers=("tensorboard", "mlflow")))
    job = make_job("linear_probe", epochs=3, batch_size=16, data_overrides=SMALL, runtime=runtime)
    log_step, log_epoch, epoch_ends = JobTrackers.log_step, JobTrackers.log_epoch, []

    def stop_two_steps_into_the_second_epoch(self, step, *values):
        log_step(self, step, *values)
        if epoch_ends and step == epoch_ends[0] + 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(JobTrackers, "log_step", stop_two_steps_into_the_second_epoch)
    monkeypatch.setattr(JobTrackers, "log_epoch", lambda self, step, record: (epoch_ends.append(step),
                                                                             log_epoch(self, step, record)))
    check_trackers(runtime.tracking, tmp_path)  # the driver's preflight: the MLflow experiment
    with pytest.raises(KeyboardInterrupt):
        execute(job, tmp_path)
    monkeypatch.undo()
    assert execute(job, tmp_path).status == "ok"
    assert "resuming" in (tmp_path / "logs" / f"{job.job_id}.log").read_text()
    history = job_results(tmp_path)[job.job_id]["history"]
    tb = tensorboard_scalars(tmp_path / "tensorboard" / job.job_id)
    steps = len(tb["step/loss"]) // 3  # per epoch
    assert steps > 1 and [step for step, _ in tb["step/loss"]] == list(range(3 * steps))
    assert [step for step, _ in tb["epoch/loss"]] == [steps - 1, 2 * steps - 1, 3 * steps - 1]
    assert [v for _, v in tb["epoch/loss"]] == pytest.approx([h["loss"] for h in history], rel=1e-6)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name(tmp_path.name).experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    logged = client.get_metric_history(runs[0].info.run_id, "step/loss")
    assert sorted(m.step for m in logged) == [step for step, _ in tb["step/loss"]]
    assert [m.value for m in sorted(client.get_metric_history(runs[0].info.run_id, "epoch/loss"),
                                    key=lambda m: m.step)] == [h["loss"] for h in history]
