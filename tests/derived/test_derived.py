"""Derived jobs end to end on CPU: --remedies wise soup posthoc on a tiny run, ordered after their parents, each an
ordinary job with its own id and result, refusing what they cannot do before anything trains."""
import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.results import RunStore
from tests.test_cli import TINY

SMALL = {"num_classes": 8, "max_per_class": 40, "imbalance_ratio": 8.0, "test_per_class": 4, "val_fraction": 0.2}
DATA = ["--datasets", "synthetic_lt", "--set", *(f"synthetic_lt.{k}={v}" for k, v in SMALL.items())]
REMEDIES = ["--remedies", "wise", "soup", "posthoc", "--set", "wise.alphas=0,1", "posthoc.adjust_taus=0,1",
            "posthoc.tau_norm_taus=0,1", "posthoc.epochs=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """full fine-tuning with a linear head (which τ-normalisation acts on) at two learning rates (--select: one
    initialisation, so they soup), 1 epoch, and every remedy on both."""
    out = tmp_path_factory.mktemp("derived")
    command = [*DATA, "--regimes", "full", "--set", "full.classifier=linear", "--select", "lr=0.01,0.02", "--epochs",
               "1", "--no-train-eval", *TINY, *REMEDIES, "--out", str(out)]
    assert main(command) == 0
    return out, command, pd.read_csv(out / "results.csv")


def test_every_remedy_is_a_job_of_its_own_after_its_parents(run):
    out, _, table = run
    assert (table.status == "ok").all()
    parents = table[table.remedy.isna()]
    assert len(parents) == 2
    derived = table[table.remedy.notna()]
    # wise: 2 parents x 2 alphas; posthoc: 2 x (tau_norm and logit_adjust at 2 taus each + crt + lws); soups:
    # uniform and greedy over the two candidates
    assert sorted(derived.remedy.value_counts().items()) == [("crt", 2), ("greedy_soup", 1), ("logit_adjust", 4),
                                                            ("lws", 2), ("tau_norm", 4), ("uniform_soup", 1),
                                                            ("wise", 4)]
    assert set(" ".join(derived.parent_ids).split()) == set(parents.job_id)
    assert derived.job_id.is_unique and not set(derived.job_id) & set(parents.job_id)


def _predictions(out, job_id):
    return RunStore(out).read_predictions(job_id)["test"]


def test_wise_at_one_and_logit_adjustment_at_zero_are_the_parent_itself(run):
    """α = 1 is the fine-tuned model, τ = 0 changes no logit: both predict the parent's test predictions exactly."""
    out, _, table = run
    for _, parent in table[table.remedy.isna()].iterrows():
        children = table[table.parent_ids == parent.job_id]
        for remedy, value in (("wise", 1.0), ("logit_adjust", 0.0)):
            child = children[(children.remedy == remedy) & (children.remedy_value == value)].iloc[0]
            np.testing.assert_array_equal(_predictions(out, child.job_id), _predictions(out, parent.job_id))
            assert child.top1 == parent.top1 and child.few == parent.few


def test_tau_norm_at_zero_only_drops_the_bias_and_at_one_predicts_with_unit_norm_rows(run):
    """τ = 0 keeps the trained linear head's weights and drops its bias (Kang et al.); τ = 1 divides each row by its
    norm."""
    from bench.remedies.cached import load_cached_features

    out, _, table = run
    store = RunStore(out)
    for _, parent in table[table.remedy.isna()].iterrows():
        cached = load_cached_features(out / store.load(parent.job_id).features["file"], parent.job_id)
        weight = cached.head.weight.detach()
        features = cached.splits["test"][0][:, 0]
        children = table[(table.parent_ids == parent.job_id) & (table.remedy == "tau_norm")]
        for tau, rows in ((0.0, weight), (1.0, weight / weight.norm(dim=1, keepdim=True))):
            child = children[children.remedy_value == tau].iloc[0]
            expected = (features @ rows.T).argmax(dim=1).numpy()
            np.testing.assert_array_equal(_predictions(out, child.job_id), expected)


def test_the_planner_says_which_corrections_do_not_apply_and_why():
    """τ-normalisation on a cosine head changes nothing and cRT has no zero-shot weights to re-train: not planned,
    each said in a line; a text-encoder classifier takes no post-hoc correction at all."""
    from bench.plan import Selection, plan
    from bench.training import Runtime

    selection = Selection(datasets=("synthetic_lt",), regimes=("zero_shot", "full", "coop"), model="ltbench-tiny",
                          pretrained="none", remedies=("posthoc",), overrides=("posthoc.adjust_taus=1",))
    planned = plan(selection, Runtime(device="cpu"))
    variants = {(job.regime, job.derived.variant) for job in planned.jobs if job.derived}
    assert variants == {("zero_shot", "logit_adjust"), ("zero_shot", "lws"), ("full", "logit_adjust"),
                        ("full", "crt"), ("full", "lws")}
    notes = " | ".join(planned.notes)
    assert "posthoc: not run on coop: coop classifies with the text encoder" in notes
    assert "cosine head already uses unit-norm class weights" in notes and "zero-shot head holds no trained" in notes
    child = next(job for job in planned.jobs if job.derived and job.regime == "full")
    parent = next(job for job in planned.jobs if job.job_id == child.derived.parents[0])
    assert parent.hparam_sources.items() <= child.hparam_sources.items()  # the parent's recipe, as recorded there
    assert child.hparam_sources["posthoc"] == "--remedies"
    assert child.hparam_sources["posthoc.adjust_taus"] == "--set posthoc.adjust_taus"
    assert child.hparam_sources["posthoc.lr"] == "ltbench default (None: the parent's value)"
    assert child.hparam_sources["posthoc.epochs"] == "ltbench default"
    demo = plan(Selection(), Runtime(device="cpu"))
    wise = next(job for job in demo.jobs if job.derived)
    assert wise.hparam_sources["wise"] == "the demo's default (bench.plan.DEMO_REMEDIES)"
    assert wise.hparam_sources["wise.alphas"] == "ltbench default"


def test_a_regime_that_trains_nothing_is_not_souped():
    """Seeds of zero-shot are one model, not fine-tunings: the soup is planned for the linear probe only, and the
    plan says why not for zero-shot."""
    from bench.plan import Selection, plan
    from bench.training import Runtime

    selection = Selection(datasets=("demo_lt",), regimes=("zero_shot", "linear_probe"), seeds=(0, 1),
                          remedies=("soup",), overrides=("soup.greedy=false",))
    planned = plan(selection, Runtime(device="cpu"))
    souped = [job for job in planned.jobs if job.derived]
    assert [(job.regime, job.derived.variant) for job in souped] == [("linear_probe", "uniform_soup")]
    assert len(souped[0].derived.parents) == 2
    assert "soup: not run on zero_shot: zero_shot trains nothing" in " | ".join(planned.notes)


def test_the_greedy_soup_records_its_ingredients_and_the_uniform_soup_averages_both(run):
    out, _, table = run
    store = RunStore(out)
    greedy = table[table.remedy == "greedy_soup"].iloc[0]
    derived = store.load(greedy.job_id).derived
    assert derived["settings"]["metric"] == "mean_class_acc" and 1 <= len(derived["ingredients"]) <= 2
    assert set(derived["ingredients"]) <= set(greedy.parent_ids.split())
    uniform = store.load(table[table.remedy == "uniform_soup"].iloc[0].job_id)
    assert uniform.derived["variant"] == "uniform_soup" and len(uniform.derived["parents"]) == 2


def test_a_rerun_redoes_nothing_and_keeps_every_id(run, caplog):
    out, command, table = run
    before = {p: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.json")}
    assert main(command) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.json")} == before
    assert set(pd.read_csv(out / "results.csv").job_id) == set(table.job_id)


def test_a_failed_parent_fails_its_children_with_its_reason(tmp_path, monkeypatch):
    """The child is recorded as failed, naming its parent and the parent's error, without running; a rerun that
    lets the parent finish runs both."""
    import bench.training.engine as engine

    trained = engine._train

    def broken(job, trackers):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(engine, "_train", broken)
    command = [*DATA, "--regimes", "lora", "--epochs", "1", "--no-train-eval", *TINY, "--remedies", "wise",
               "--set", "wise.alphas=0.5", "--out", str(tmp_path)]
    assert main(command) == 1
    table = pd.read_csv(tmp_path / "results.csv")
    parent, child = table[table.remedy.isna()].iloc[0], table[table.remedy.notna()].iloc[0]
    assert parent.status == child.status == "failed"
    assert child.error == "its parent synthetic_lt/lora/seed0 did not finish (failed: RuntimeError: the disk went away)"
    monkeypatch.setattr(engine, "_train", trained)
    assert main(command) == 0
    assert (pd.read_csv(tmp_path / "results.csv").status == "ok").all()


@pytest.mark.parametrize("extra, message", [
    (["--remedies", "wise", "--regimes", "linear_probe"], "wise: no job of this run"),
    (["--set", "wise.alphas=0,1", "--regimes", "full"], "wise is not in --remedies"),
    (["--remedies", "wise", "--set", "wise.alphas=0,2", "--regimes", "full"], "outside [0, 1]"),
    (["--remedies", "nosuch", "--regimes", "full"], "unknown remedy"),
    (["--remedies", "soup", "--regimes", "full", "--seeds", "0", "1"], "random weights"),
])
def test_remedies_that_cannot_run_are_refused_before_training(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*DATA, *TINY, "--epochs", "1", "--out", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "jobs").exists()


def test_greedy_soup_without_a_validation_split_is_refused_naming_the_fixes(tmp_path, capsys):
    command = ["--datasets", "synthetic_lt", *TINY, "--regimes", "full", "--select", "lr=0.01,0.02",
               "--remedies", "soup", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main(command)
    err = capsys.readouterr().err
    assert "--select picks on a validation split" in err or "greedy soup" in err


@pytest.mark.parametrize("regime, remedy, saved", [("linear_probe", "posthoc", "cached features"),
                                                   ("lora", "wise", "weights")])
def test_finished_parents_without_what_their_children_read_are_refused(tmp_path, capsys, regime, remedy, saved):
    """A parent that finished before --remedies asked for its weights or cached features is not retrained behind
    the user's back: the run stops before training, naming it, what it lacks and the fix."""
    command = [*DATA, "--regimes", regime, "--epochs", "1", "--no-train-eval", *TINY, "--out", str(tmp_path)]
    assert main(command) == 0
    assert main(command + ["--remedies", remedy]) == 2
    err = capsys.readouterr().err
    assert "did not save what their derived jobs read" in err and f"({saved})" in err and "--force" in err
    assert json.loads(next((tmp_path / "jobs").glob("*.json")).read_text())["status"] == "ok"


def test_the_report_puts_each_remedy_beside_its_parent_and_never_among_the_main_rows(run, tmp_path):
    """The Remedies section (τ picked on the validation split, which this run has); and a derived row never poses as
    its parent's main row, with or without the plan that says which jobs are main."""
    import shutil

    from reports.load import load_run
    from reports.remedies import remedies_section

    out, _, table = run
    loaded = load_run(out)
    section = remedies_section(loaded)
    assert "WiSE-FT" in section and "Model soups" in section and "(τ on val)" in section
    assert "τ chosen on the validation split" in section
    derived = set(table[table.remedy.notna()].job_id)
    assert not derived & loaded.main_ids and set(loaded.main.job_id) == set(table[table.remedy.isna()].job_id)
    unplanned = tmp_path / "run"
    shutil.copytree(out, unplanned)
    (unplanned / "manifest.json").unlink()
    assert not derived & load_run(unplanned).main_ids
