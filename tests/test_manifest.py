import json
import multiprocessing

import pytest

from bench.manifest import ManifestError, ManifestJob, dataset_key, read_manifest, record_plan
from bench.job_result import recipe_id

CONFIG = {"dataset": "synthetic_lt", "dataset_config": {"type": "SyntheticConfig", "imbalance_ratio": 100},
          "data_fingerprint": "a" * 64, "regime": "linear_probe", "recipe": {"epochs": 2, "lr": 0.01},
          "protocol": "reference", "model": "ltbench-tiny", "pretrained": "none", "seed": 0}


def entry(job_id: str, dataset: str = "synthetic_lt", fingerprint: str = "a" * 64, main: bool = True,
          grids: tuple[str, ...] = (), regime: str = "linear_probe", lightweight: bool = False) -> ManifestJob:
    config = {**CONFIG, "dataset": dataset, "data_fingerprint": fingerprint, "regime": regime}
    return ManifestJob(job_id=job_id, label=f"{dataset}/{regime}/seed0", dataset=dataset, regime=regime, seed=0,
                       recipe_id=recipe_id(config), dataset_key=dataset_key(config), data_fingerprint=fingerprint,
                       main=main, grids=grids, lightweight=lightweight, protocol="reference")


def plan(run_dir, jobs, command=("run_bench.py",)):
    record_plan(run_dir, jobs, protocol="reference", hparam_source="reference defaults (test set)",
                command=list(command))


def test_recipe_id_leaves_out_the_seed_and_dataset_key_the_data_and_recipe():
    assert recipe_id(CONFIG) == recipe_id({**CONFIG, "seed": 7})
    assert recipe_id(CONFIG) != recipe_id({**CONFIG, "recipe": {"epochs": 1, "lr": 0.01}})
    assert len(recipe_id(CONFIG)) == 16 and int(recipe_id(CONFIG), 16) >= 0
    same_data_set = {**CONFIG, "data_fingerprint": "b" * 64, "regime": "full", "recipe": {}, "seed": 3}
    assert dataset_key(CONFIG) == dataset_key(same_data_set)
    assert dataset_key(CONFIG) != dataset_key({**CONFIG, "dataset_config": {"type": "SyntheticConfig",
                                                                             "imbalance_ratio": 10}})


def test_two_plans_are_kept_and_a_job_planned_twice_has_one_merged_entry(tmp_path):
    assert read_manifest(tmp_path) is None
    plan(tmp_path, [entry("a", grids=("init",), main=False), entry("b")], command=["run_bench.py", "--epochs", "2"])
    plan(tmp_path, [entry("a", grids=("tte",), main=True, lightweight=True)], command=["run_bench.py", "--grid"])
    manifest = read_manifest(tmp_path)
    assert [p.job_ids for p in manifest.plans] == [("a", "b"), ("a",)]
    assert manifest.plans[0].command == ("run_bench.py", "--epochs", "2")
    assert manifest.plans[0].hparam_source == "reference defaults (test set)"
    assert manifest.plans[0].created.endswith("+00:00") and manifest.plans[0].created <= manifest.plans[1].created
    assert set(manifest.jobs) == {"a", "b"}
    a = manifest.jobs["a"]
    assert a.main and a.grids == ("init", "tte") and a.lightweight  # main if any plan said so, grids unioned
    plan(tmp_path, [entry("a", grids=("init",), main=False)])
    assert read_manifest(tmp_path).jobs["a"].main  # a later grid-only plan does not demote it
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["format"] == 1 and set(raw["plans"][0]) == {"created", "command", "protocol", "hparam_source",
                                                           "job_ids", "data", "plugins"}
    assert raw["plans"][0]["plugins"] == []


def test_a_plan_recorded_before_plugins_existed_reads_as_one_without_plugins(tmp_path):
    plan(tmp_path, [entry("a")])
    raw = json.loads((tmp_path / "manifest.json").read_text())
    del raw["plans"][0]["plugins"]
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    assert read_manifest(tmp_path).plans[0].plugins == ()
    del raw["plans"][0]["job_ids"]  # a field every manifest has: still a damaged file
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="is not a readable ltbench manifest"):
        read_manifest(tmp_path)


def test_plans_recorded_by_processes_at_once_are_all_kept(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=record_plan, args=(tmp_path, [entry(f"job{i}")]),
                               kwargs={"protocol": "reference", "hparam_source": "x", "command": [str(i)]})
               for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    manifest = read_manifest(tmp_path)
    assert sorted(p.command[0] for p in manifest.plans) == ["0", "1", "2", "3"]
    assert set(manifest.jobs) == {"job0", "job1", "job2", "job3"}


def test_a_job_is_stale_once_a_later_plan_reads_its_data_set_with_other_data(tmp_path):
    plan(tmp_path, [entry("old"), entry("other", dataset="cifar100_lt")])
    plan(tmp_path, [entry("new", fingerprint="b" * 64)])  # the split files changed
    manifest = read_manifest(tmp_path)
    assert manifest.stale_ids() == {"old"} and manifest.current_ids() == {"other", "new"}
    plan(tmp_path, [entry("old")])  # the old data is back, and planned again
    manifest = read_manifest(tmp_path)
    assert manifest.stale_ids() == {"new"} and manifest.current_ids() == {"old", "other"}


@pytest.mark.parametrize("text", ["{not json", '{"format": 1, "plans": []}', '{"format": 99, "plans": [], "jobs": {}}',
                                  '{"format": 1, "plans": [{"created": "x"}], "jobs": {}}', "[]"])
def test_a_corrupt_manifest_is_an_error_naming_the_file(tmp_path, text):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match="manifest.json is not a readable ltbench manifest"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError):
        plan(tmp_path, [entry("a")])  # never overwrites what it cannot read
