"""The honest parameter share: the classifier (class weight and bias) is counted apart from what a regime trains
in the backbone, for every regime (the counts of tests/regimes/test_regimes.py's ROWS)."""
import dataclasses

import pytest
import torch

from bench.job_result import ROW_COLUMNS, JobResult
from bench.training.engine import classifier_tensors, data_wait_share, parameter_share
from regimes import get_regime
from tests.regimes.test_regimes import ROWS, _build


@pytest.fixture(scope="module")
def synthetic():
    from bench.data import build_dataset, dataset_config

    return build_dataset(dataset_config("synthetic_lt"), "data", False)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_classifier_and_backbone_share_of_every_regime(name, synthetic):
    row = ROWS[name]
    _, model = _build(name, synthetic)
    share = parameter_share(model)
    trainable = dict(model.trainable_parameters())
    assert classifier_tensors(model) == list(row.classifier)
    assert share["classifier"] == sum(trainable[n].numel() for n in row.classifier)
    assert share["trainable"] == sum(p.numel() for p in trainable.values())
    assert share["backbone_trainable"] + share["classifier"] == share["trainable"]
    if row.count is not None:
        assert share["backbone_trainable"] == row.count  # adapters, prompts, tuned tensors, context: not the head
    assert share["backbone_trainable_pct"] == pytest.approx(100.0 * share["backbone_trainable"] / share["backbone"])
    assert share["trainable_pct"] == pytest.approx(100.0 * share["trainable"] / share["backbone"])
    if name in ("zero_shot", "linear_probe"):
        assert share["backbone_trainable"] == 0 and share["backbone_trainable_pct"] == 0.0


def test_a_head_with_bias_or_wrapped_is_all_classifier(synthetic):
    regime = get_regime("linear_probe")
    recipe = dataclasses.replace(regime.recipe, classifier="linear", classifier_init="random")
    _, model = _build("linear_probe", synthetic, recipe)
    assert classifier_tensors(model) == ["head.weight", "head.bias"]
    assert parameter_share(model)["classifier"] == 20 * 128 + 20

    class Wrapper(torch.nn.Module):
        def __init__(self, head):
            super().__init__()
            self.inner = head

        def forward(self, features):
            return self.inner(features)

    model.head = Wrapper(model.head)
    assert classifier_tensors(model) == ["head.inner.weight", "head.inner.bias"]
    assert parameter_share(model)["backbone_trainable"] == 0


def test_result_rows_carry_the_share_and_old_results_leave_it_empty():
    params = {"trainable": 110, "backbone": 1000, "trainable_pct": 11.0, "backbone_trainable": 10, "classifier": 100,
              "backbone_trainable_pct": 1.0}
    row = JobResult("a", "a", {}, params=params).to_row()
    columns = list(ROW_COLUMNS)  # appended after the columns of earlier results.csv files, which keep their places
    start = columns.index("backbone_trainable_params")
    assert columns[start:start + 3] == ["backbone_trainable_params", "backbone_trainable_pct", "classifier_params"]
    assert columns[start - 1] == "few_ci_high"
    assert (row["backbone_trainable_params"], row["backbone_trainable_pct"], row["classifier_params"]) == (10, 1.0, 100)
    assert row["trainable_params"] == 110 and row["trainable_pct"] == 11.0
    old = JobResult("b", "b", {}, params={"trainable": 5, "backbone": 10, "trainable_pct": 50.0}).to_row()
    assert old["backbone_trainable_params"] is None and old["classifier_params"] is None


def test_data_wait_share_over_epochs():
    assert data_wait_share([]) is None
    assert data_wait_share([{"seconds": 2.0, "loss": 1.0}]) is None  # records without data_wait_s
    history = [{"seconds": 4.0, "data_wait_s": 1.0, "data_wait_share": 0.25},
               {"seconds": 6.0, "data_wait_s": 4.0, "data_wait_share": 4 / 6}]
    assert data_wait_share(history) == pytest.approx(5.0 / 10.0)
    assert data_wait_share([{"seconds": 9.0, "step_s": 5.0, "data_wait_s": 1.0}]) == pytest.approx(0.2)


def test_a_job_records_the_share():
    from bench.training.engine import train
    from tests.conftest import make_job

    result = train(make_job("lora", epochs=1, runtime=None))
    params = result.params
    assert params["classifier"] == 20 * 128  # the cosine head's class weights (no bias)
    assert params["backbone_trainable"] == params["trainable"] - params["classifier"] > 0
    assert "data_wait_share" in result.timings
