import pytest

from bench.cli import main
from tests.tracking.conftest import TRACKED, TWO_EPOCHS, job_results, tensorboard_scalars


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    assert main([*TRACKED, *TWO_EPOCHS, "--regimes", "linear_probe", "zero_shot", "--set",
                 "synthetic_lt.val_fraction=0.2", "--out", str(out), "--log", "tensorboard"]) == 0
    return out


def test_event_files_hold_the_jobs_epochs_and_final_metrics(run):
    """TensorBoard stores float32: the numbers are the JSON's to its precision."""
    results = job_results(run)
    assert {path.name for path in (run / "tensorboard").iterdir()} == set(results)
    for job_id, result in results.items():
        scalars = tensorboard_scalars(run / "tensorboard" / job_id)
        for split in ("test", "val"):
            for metric in ("top1", "many", "medium", "few", "mean_class_acc"):
                value = result["metrics"][split][metric]
                assert [v for _, v in scalars[f"{split}/{metric}"]] == pytest.approx([value], rel=1e-6), metric
        losses = [v for _, v in scalars.get("epoch/loss", [])]
        assert losses == pytest.approx([h["loss"] for h in result["history"]], rel=1e-6)
        assert [v for _, v in scalars.get("epoch/train_batch_acc", [])] == pytest.approx(
            [h["train_batch_acc"] for h in result["history"]], rel=1e-6)


def test_every_step_has_loss_lr_and_throughput_once(run):
    trained = next(r for r in job_results(run).values() if r["config"]["regime"] == "linear_probe")
    scalars = tensorboard_scalars(run / "tensorboard" / trained["job_id"])
    steps = [step for step, _ in scalars["step/loss"]]
    assert len(steps) > 2 and steps == list(range(len(steps)))
    assert [s for s, _ in scalars["step/lr"]] == steps and all(v > 0 for _, v in scalars["step/images_per_s"])
    per_epoch = len(steps) // len(trained["history"])
    assert [v for _, v in scalars["step/lr"]] == pytest.approx(
        [h["lr"] for h in trained["history"] for _ in range(per_epoch)], rel=1e-6)


def test_the_config_is_in_the_hparams_dashboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for job_id, result in job_results(run).items():
        accumulator = EventAccumulator(str(run / "tensorboard" / job_id))
        accumulator.Reload()
        content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["label"].string_value == result["label"]
        assert hparams["status"].string_value == "ok"
        assert hparams["recipe.lr"].number_value == pytest.approx(result["config"]["recipe"]["lr"])
        assert hparams["dataset_config.val_fraction"].number_value == pytest.approx(0.2)
