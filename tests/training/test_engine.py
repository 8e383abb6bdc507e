import math

import pytest
import torch

from bench.training import Runtime
from bench.training.engine import NonFiniteLossError, train
from bench.training.losses import LogitAdjustedLoss
from tests.conftest import make_job


@pytest.fixture(scope="module")
def probe_result():
    return train(make_job("linear_probe", epochs=3))


def test_linear_probe_learns_and_reports_everything(probe_result):
    r = probe_result
    losses = [h["loss"] for h in r["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    test, train_metrics = r["metrics"]["test"], r["metrics"]["train"]
    assert len(test["per_class_acc"]) == 20 and test["num_samples"] == 400
    assert sum(c for _, _, c in test["confusion"]) == 400
    assert all(test[g] is not None for g in ("many", "medium", "few"))
    assert train_metrics["num_samples"] == r["dataset"]["train_size"]
    assert r["params"]["trainable"] == 20 * 128  # K·D cosine classifier
    assert r["params"]["trainable_tensors"] == ["head.weight"]
    assert r["timings"]["train_s"] > 0 and r["timings"]["total_s"] >= r["timings"]["train_s"]
    assert r["split_fingerprint"] == r["dataset"]["fingerprint"] and r["epochs"] == 3
    assert r["runtime"]["precision"] == "fp32"


def test_deterministic_on_cpu(probe_result):
    again = train(make_job("linear_probe", epochs=3))
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in probe_result["history"]]
    assert again["metrics"]["test"]["per_class_acc"] == probe_result["metrics"]["test"]["per_class_acc"]
    other_seed = train(make_job("linear_probe", epochs=3, seed=1))
    assert [h["loss"] for h in other_seed["history"]] != [h["loss"] for h in probe_result["history"]]


def test_gradient_accumulation_equals_full_batch():
    full = train(make_job("full", epochs=2, runtime=Runtime(device="cpu", train_eval=False)))
    accumulated = train(make_job("full", epochs=2,
                                 runtime=Runtime(device="cpu", micro_batch_size=24, train_eval=False)))
    for a, b in zip(full["history"], accumulated["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert full["metrics"]["test"]["top1"] == accumulated["metrics"]["test"]["top1"]


def test_full_trains_every_block_tensor_and_nothing_else():
    r = train(make_job("full", epochs=1, runtime=Runtime(device="cpu", train_eval=False)))
    names = r["params"]["trainable_tensors"]
    assert names[-1] == "head.weight"
    assert all(n.startswith("visual.transformer.resblocks.") for n in names[:-1])
    assert len(names) - 1 == 4 * 12  # 4 blocks x (ln_1, in_proj, out_proj, ln_2, c_fc, c_proj; weight+bias)
    assert r["params"]["trainable"] == 4 * (12 * 128 * 128 + 13 * 128) + 20 * 128  # 12W² + 13W per block


def test_zero_shot_trains_nothing():
    r = train(make_job("zero_shot"))
    assert r["epochs"] == 0 and r["history"] == [] and r["params"]["trainable"] == 0
    assert r["metrics"]["test"]["top1"] is not None


def test_nan_loss_is_an_error_naming_the_step():
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at epoch 1, step \d+"):
        train(make_job("linear_probe", epochs=1, lr=1e38, classifier="linear", classifier_init="random"))


def test_logit_adjusted_loss_is_ce_on_shifted_logits():
    counts = torch.tensor([90.0, 9.0, 1.0])
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    expected = torch.nn.functional.cross_entropy(logits + torch.log(counts / counts.sum()), labels)
    assert math.isclose(LogitAdjustedLoss(counts.numpy())(logits, labels).item(), expected.item(), rel_tol=1e-6)


def test_precision_resolution_on_cpu():
    from bench.training.engine import resolve_device, resolve_precision

    cpu = resolve_device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="mixed precision bf16 needs a GPU"):
        resolve_precision("bf16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available; use --device cpu"):
            resolve_device("cuda")
