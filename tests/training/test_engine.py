import contextlib
import math

import pytest
import torch

from bench.training import Runtime
from bench.training.engine import train
from bench.training.loop import NonFiniteLossError
from bench.training.losses import make_loss
from tests.conftest import make_job


@pytest.fixture(scope="module")
def probe_result():
    return train(make_job("linear_probe", epochs=3))


def test_linear_probe_learns_and_reports_everything(probe_result):
    r = probe_result
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    test, train_metrics = r.metrics["test"], r.metrics["train"]
    assert len(test["per_class_acc"]) == 20 and test["num_samples"] == 400
    assert sum(c for _, _, c in test["confusion"]) == 400
    assert all(test[g] is not None for g in ("many", "medium", "few"))
    assert train_metrics["num_samples"] == r.dataset["train_size"]
    assert r.params["trainable"] == 20 * 128  # K·D cosine classifier
    assert r.params["trainable_tensors"] == ["head.weight"]
    assert r.timings["train_s"] > 0 and r.timings["total_s"] >= r.timings["train_s"]
    assert r.split_fingerprint == r.dataset["fingerprint"] and r.epochs == 3
    assert r.runtime["precision"] == "fp32"


def test_deterministic_on_cpu(probe_result):
    again = train(make_job("linear_probe", epochs=3))
    assert [h["loss"] for h in again.history] == [h["loss"] for h in probe_result.history]
    assert again.metrics["test"]["per_class_acc"] == probe_result.metrics["test"]["per_class_acc"]
    other_seed = train(make_job("linear_probe", epochs=3, seed=1))
    assert [h["loss"] for h in other_seed.history] != [h["loss"] for h in probe_result.history]


def test_gradient_accumulation_equals_full_batch():
    full = train(make_job("full", epochs=2, runtime=Runtime(device="cpu", train_eval=False)))
    accumulated = train(make_job("full", epochs=2,
                                 runtime=Runtime(device="cpu", micro_batch_size=24, train_eval=False)))
    for a, b in zip(full.history, accumulated.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert full.metrics["test"]["top1"] == accumulated.metrics["test"]["top1"]


def test_full_trains_every_block_tensor_and_nothing_else():
    r = train(make_job("full", epochs=1, runtime=Runtime(device="cpu", train_eval=False)))
    names = r.params["trainable_tensors"]
    assert names[-1] == "head.weight"
    assert all(n.startswith("visual.transformer.resblocks.") for n in names[:-1])
    assert len(names) - 1 == 4 * 12  # 4 blocks x (ln_1, in_proj, out_proj, ln_2, c_fc, c_proj; weight+bias)
    assert r.params["trainable"] == 4 * (12 * 128 * 128 + 13 * 128) + 20 * 128  # 12W² + 13W per block


def test_zero_shot_trains_nothing():
    r = train(make_job("zero_shot"))
    assert r.epochs == 0 and r.history == [] and r.params["trainable"] == 0
    assert r.metrics["test"]["top1"] is not None


def test_nan_loss_is_an_error_naming_the_step():
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at epoch 1, step \d+"):
        train(make_job("linear_probe", epochs=1, lr=1e38, classifier="linear", classifier_init="random"))


def test_per_epoch_seeds_of_every_valid_seed_are_usable_and_keep_small_seeds_as_before():
    import numpy as np

    from bench.cli import MAX_SEED
    from bench.fields import MAX_EPOCHS
    from bench.training.precision import epoch_seed, seed_everything

    seed_everything(epoch_seed(MAX_SEED, MAX_EPOCHS))  # numpy alone takes 32 bits: this overflowed before
    first = np.random.rand()
    seed_everything(epoch_seed(MAX_SEED, MAX_EPOCHS))
    assert np.random.rand() == first
    seed_everything(epoch_seed(3, 2))
    state = np.random.get_state()[1][:4].copy()
    np.random.seed(3 * 100_003 + 2)
    assert (np.random.get_state()[1][:4] == state).all()  # seeds below 2^32 seed numpy exactly as before


def test_precision_resolution_on_cpu():
    from bench.training.precision import resolve_device, resolve_precision

    cpu = resolve_device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="mixed precision bf16 needs a GPU"):
        resolve_precision("bf16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available; use --device cpu"):
            resolve_device("cuda")


def _tiny_model(regime: str):
    """A regime's model on the tiny random backbone, with a batch and a loss."""
    from bench.data import build_dataset
    from bench.models import load_backbone
    from regimes import get_regime

    job = make_job(regime)
    data = build_dataset(job.dataset_config, "unused")
    torch.manual_seed(0)
    backbone = load_backbone(job.model, job.pretrained, data.classnames)
    model = get_regime(regime).build(backbone, data, job.recipe)
    images, labels = torch.randn(6, 3, 32, 32), torch.arange(6) % data.num_classes
    return model, job.recipe, images, labels, make_loss(job.recipe, data.train_class_counts)


@pytest.mark.parametrize("regime", ["full", "lift_plus", "partial", "vpt"])
def test_bf16_and_fp32_train_the_same_tensors(regime):
    from bench.training.optim import make_optimiser, train_step
    from bench.training.precision import autocast_factory

    grads = {}
    for precision in ("fp32", "bf16"):
        model, recipe, images, labels, loss = _tiny_model(regime)
        optimiser = make_optimiser([p for _, p in model.trainable_parameters()], recipe, torch.device("cpu"))
        model.train()
        value, _ = train_step(model, optimiser, loss, images, labels, 6, autocast_factory(torch.device("cpu"),
                                                                                          precision), None)
        assert math.isfinite(float(value))
        grads[precision] = {n for n, p in model.named_parameters() if p.grad is not None}
        assert grads[precision] == {n for n, _ in model.trainable_parameters()}
        assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast never casts the weights
    assert grads["fp32"] == grads["bf16"]


def test_optimiser_kernels_compute_the_same_update():
    from bench.training.optim import make_optimiser, optimiser_step, train_step

    updated = {}
    for kernel in ("loop", "foreach", "default"):
        model, recipe, images, labels, loss = _tiny_model("full")
        optimiser = make_optimiser([p for _, p in model.trainable_parameters()], recipe, torch.device("cpu"), kernel)
        for _ in range(2):
            train_step(model, optimiser, loss, images, labels, 6, contextlib.nullcontext, None)
            optimiser_step(optimiser, None)
        updated[kernel] = torch.cat([p.detach().flatten() for _, p in model.trainable_parameters()])
    assert torch.allclose(updated["loop"], updated["foreach"], atol=1e-6)
    assert torch.allclose(updated["loop"], updated["default"], atol=1e-6)
    with pytest.raises(ValueError, match="unknown optimiser kernel 'turbo'"):
        make_optimiser([], recipe, torch.device("cpu"), "turbo")


def test_partial_builds_no_graph_below_its_first_trainable_block():
    """Autograd records nothing for frozen blocks whose input needs no gradient: no wasted backward there."""
    model, *_ = _tiny_model("partial")  # the last block trains
    blocks = model.visual.transformer.resblocks
    recorded = []
    for block in blocks:
        block.register_forward_hook(lambda module, args, out: recorded.append(out.requires_grad))
    model.train()
    model(torch.randn(2, 3, 32, 32))
    assert recorded == [False] * (len(blocks) - 1) + [True]


@pytest.mark.parametrize("regime", ["zero_shot", "linear_probe"])
def test_cached_frozen_features_give_the_same_logits_as_the_uncached_path(regime, tmp_path, monkeypatch):
    from bench import features
    from bench.data import build_dataset
    from bench.training.context import JobContext

    calls = []
    extract = features._extract
    monkeypatch.setattr(features, "_extract", lambda *a, **k: calls.append(1) or extract(*a, **k))

    model, *_ = _tiny_model(regime)
    job = make_job(regime)
    data = build_dataset(job.dataset_config, "unused")
    uncached = JobContext.create(job)
    cached = JobContext.create(make_job(regime, runtime=Runtime(device="cpu", run_dir=str(tmp_path))))
    fresh = features.features(model, data, "test", "test", uncached)["features"]
    stored = features.features(model, data, "test", "test", cached)["features"]
    reread = features.features(model, data, "test", "test", cached)["features"]
    assert len(calls) == 2  # the third call read the cache: no backbone forward
    with torch.no_grad():
        logits = [model.head(f[:, 0]) for f in (fresh, stored, reread)]
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_frozen_tower_trains_on_cached_features_exactly_as_on_images(monkeypatch):
    """augmentation "none": the head trains on features computed once, with the images' order and numbers."""
    from bench import features
    from bench.training import loop

    job = make_job("linear_probe", epochs=3, augmentation="none", runtime=Runtime(device="cpu", train_eval=False))
    calls = []
    extract = features._extract
    monkeypatch.setattr(features, "_extract", lambda model, data, split, view, ctx: calls.append(view)
                        or extract(model, data, split, view, ctx))
    on_features = train(job)
    assert calls.count("train") == 1  # one backbone pass over the training set for all three epochs
    monkeypatch.setattr(loop, "frozen_tower", lambda model: False)  # force the image path
    on_images = train(job)
    for a, b in zip(on_features.history, on_images.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["train_batch_acc"] == b["train_batch_acc"]
    assert on_features.metrics["test"]["per_class_acc"] == on_images.metrics["test"]["per_class_acc"]
