import pytest

from bench.cli import main
from tests.tracking.conftest import TRACKED, TWO_EPOCHS, job_results


def _runs(out):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(out.name)  # the run folder's name
    return client, {run.data.tags["ltbench.job_id"]: run for run in client.search_runs([experiment.experiment_id])}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two jobs at once, each in its own process (--workers 2), logging to the file store under the run."""
    out = tmp_path_factory.mktemp("mlflow") / "run"
    assert main([*TRACKED, *TWO_EPOCHS, "--regimes", "linear_probe", "--seeds", "0", "1", "--workers", "2",
                 "--out", str(out), "--log", "mlflow"]) == 0
    return out


def test_each_job_has_one_finished_run_with_the_jsons_numbers(run):
    client, runs = _runs(run)
    results = job_results(run)
    assert set(runs) == set(results) and len(results) == 2
    for job_id, result in results.items():
        logged = runs[job_id]
        assert logged.info.status == "FINISHED" and logged.info.run_name == f"{result['label']} {job_id}"
        test = result["metrics"]["test"]
        for metric in ("top1", "many", "medium", "few", "mean_class_acc"):
            assert logged.data.metrics[f"test/{metric}"] == test[metric]
        epochs = sorted(client.get_metric_history(logged.info.run_id, "epoch/loss"), key=lambda m: m.step)
        assert [m.value for m in epochs] == [h["loss"] for h in result["history"]]
        steps = client.get_metric_history(logged.info.run_id, "step/loss")
        assert sorted(m.step for m in steps) == list(range(len(steps))) and len(steps) > 2


def test_the_jobs_config_is_its_params(run):
    _, runs = _runs(run)
    for job_id, result in job_results(run).items():
        params = runs[job_id].data.params
        assert params["job_id"] == job_id and params["seed"] == str(result["config"]["seed"])
        assert float(params["recipe.lr"]) == result["config"]["recipe"]["lr"]
        assert params["dataset_config.max_per_class"] == "150"


def test_a_failed_job_ends_its_run_as_failed(tmp_path):
    out = tmp_path / "run"
    assert main([*TRACKED, *TWO_EPOCHS, "--regimes", "linear_probe", "--out", str(out), "--log", "mlflow",
                 "--set", "linear_probe.lr=1e38", "linear_probe.classifier=linear",
                 "linear_probe.classifier_init=random"]) == 1
    _, runs = _runs(out)
    assert [run.info.status for run in runs.values()] == ["FAILED"]
    assert [r["status"] for r in job_results(out).values()] == ["failed"]


def test_an_unusable_tracking_store_exits_2_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main([*TRACKED, "--regimes", "zero_shot", "--out", str(tmp_path / "run"), "--log", "mlflow",
                 "--mlflow-uri", (tmp_path / "file" / "mlruns").as_uri()]) == 2
    err = capsys.readouterr().err
    assert "ltbench: error: --log mlflow cannot use the tracking store" in err and "--mlflow-uri" in err
    assert not (tmp_path / "run" / "jobs").exists()
