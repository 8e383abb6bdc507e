"""WiSE-FT: α = 0 is the initial model and α = 1 the fine-tuned one, to the bit, for every kind of regime; in
between, an attached module's output is mixed (LoRA's delta halves at α = 0.5) and the other tensors' values."""
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import bench
from bench.features import frozen_tower
from bench.models import load_backbone
from bench.models.sites import attached_modules, attached_parameters
from bench.registry import get_regime
from bench.remedies.wise import Blend, interpolate, load_parent, wise_applies, wise_model
from bench.results import RunStore
from bench.training.engine import classifier_tensors, parameter_share
from bench.weights import INITIAL, Classes, WeightsFileError, initial_tensors, load_tensors, rebuild, tensor_digest
from tests.test_weights import rebuilt_predictions, trained

REGIMES = ["lora", "adaptformer", "full", "partial", "vpt", "ssf", "bitfit", "coop", "clip_adapter", "lift_plus"]
CLASSES = Classes(("cat", "dog", "bird", "fish", "frog", "horse"))


def built(name: str, init_seed: int):
    """The tiny model of regime `name` as built before training: the same random backbone every time, its head
    and attached modules drawn from `init_seed` (the rebuilt model of a derived job draws its own)."""
    regime = get_regime(name)
    torch.manual_seed(0)
    backbone = load_backbone("ltbench-tiny", "none", list(CLASSES.classnames),
                             text_tower=regime.uses_text_tower(regime.recipe),
                             text_embeddings=regime.needs_text_embeddings(regime.recipe))
    torch.manual_seed(init_seed)
    return regime.build(backbone, CLASSES, regime.recipe)


def logits(model) -> torch.Tensor:
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(images)


def fine_tuned(name: str) -> dict:
    """A job of `name` whose training is noise on every trainable tensor: its logits before and after, and what
    its weights file would hold (the trainable tensors, and their initial values as the engine keeps them)."""
    model = built(name, init_seed=1)
    initial = {key[len(INITIAL):]: value for key, value in initial_tensors(model, classifier_tensors(model)).items()}
    start = {key: param.detach().clone() for key, param in model.trainable_parameters()}
    before = logits(model)
    with torch.no_grad():
        for _, param in model.trainable_parameters():
            param.add_(0.1 * torch.randn_like(param))
    after = logits(model)
    assert not torch.allclose(before, after, atol=1e-3)  # the "training" moved the logits
    finetuned = {key: param.detach().clone() for key, param in model.trainable_parameters()}
    return {"before": before, "after": after, "start": start, "finetuned": finetuned, "initial": initial}


@pytest.fixture(scope="module")
def jobs() -> dict:
    return {name: fine_tuned(name) for name in REGIMES}


@pytest.mark.parametrize("name", REGIMES)
def test_alpha_0_is_the_initial_model_and_1_the_fine_tuned_one(jobs, name):
    job = jobs[name]
    for alpha, expected in ((0.0, job["before"]), (1.0, job["after"])):
        model = interpolate(built(name, init_seed=2), job["finetuned"], job["initial"], alpha)
        assert not model.training
        torch.testing.assert_close(logits(model), expected, rtol=0, atol=0)
    blends = [host.tuners[site] for _, host, site in attached_modules(model)]
    assert all(isinstance(blend, Blend) for blend in blends)
    assert bool(blends) == (name not in ("full", "partial", "bitfit"))


def test_initial_values_hold_the_classifier_and_every_attached_tensor(jobs):
    assert set(jobs["lora"]["initial"]) == {"head.weight", *attached_parameters(built("lora", 1))}
    assert set(jobs["full"]["initial"]) == {"head.weight"}  # full's tensors start from the pretrained weights
    assert set(jobs["coop"]["initial"]) == {"head.text.tuners.context.context"}  # the text classifier has none
    lora = built("lora", init_seed=2)
    assert not torch.equal(dict(lora.named_parameters())["visual.transformer.resblocks.0.tuners.q.down"],
                           jobs["lora"]["initial"]["visual.transformer.resblocks.0.tuners.q.down"])  # another draw


def test_half_way_lora_halves_its_delta(jobs):
    job = jobs["lora"]
    model = interpolate(built("lora", init_seed=2), job["finetuned"], job["initial"], 0.5)
    blend = model.visual.transformer.resblocks[0].tuners["q"]
    x = torch.randn(2, 5, 128)
    with torch.no_grad():
        torch.testing.assert_close(blend(x), 0.5 * blend.finetuned(x))  # its initial output is 0: the delta halves
    expected = built("lora", init_seed=2)
    load_tensors(expected, job["finetuned"], "trainable")
    with torch.no_grad():  # every up projection halved, the head half way from its init
        for _, host, site in attached_modules(expected):
            host.tuners[site].up.mul_(0.5)
        expected.head.weight.copy_((job["initial"]["head.weight"] + job["finetuned"]["head.weight"]) / 2)
    torch.testing.assert_close(logits(model), logits(expected))
    assert not frozen_tower(model)  # its features are not the pretrained tower's cached ones


def test_half_way_full_fine_tuning_is_the_midpoint_of_the_weights(jobs):
    job = jobs["full"]
    model = interpolate(built("full", init_seed=2), job["finetuned"], job["initial"], 0.5)
    midpoint = {name: (job["start"][name] + value) / 2 for name, value in job["finetuned"].items()}
    for name, param in model.trainable_parameters():
        torch.testing.assert_close(param.detach(), midpoint[name])
    expected = built("full", init_seed=2)
    load_tensors(expected, midpoint, "trainable")
    torch.testing.assert_close(logits(model), logits(expected))


def test_alpha_outside_0_1_and_initial_values_that_do_not_fit_are_refused(jobs):
    job = jobs["lora"]
    with pytest.raises(ValueError, match=r"alpha=1.5 is outside \[0, 1\]"):
        interpolate(built("lora", 2), job["finetuned"], job["initial"], 1.5)
    wrong = {**job["initial"], "head.weight": job["initial"]["head.weight"][:2]}
    with pytest.raises(WeightsFileError, match="1 initial tensors fit no trainable tensor"):
        interpolate(built("lora", 2), job["finetuned"], wrong, 0.5)


def test_wise_applies_to_jobs_that_trained_backbone_side_tensors():
    for name in ("lora", "full", "coop", "clip_adapter", "proj_tuning", "sparse"):
        assert wise_applies(parameter_share(built(name, 1))) is None, name
    assert "classifier only" in wise_applies(parameter_share(built("linear_probe", 1)))
    assert "trains no tensor" in wise_applies(parameter_share(built("zero_shot", 1)))
    assert "older ltbench" in wise_applies({"trainable": 10})


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("wise")
    return (run_dir, *trained(run_dir, "lora"))


def test_a_real_job_round_trip(lora_run):
    run_dir, job, result = lora_run
    with safe_open(str(run_dir / result.weights["file"]), framework="pt") as fh:
        initial = {name[len(INITIAL):] for name in fh.keys() if name.startswith(INITIAL)}
    assert initial == set(result.params["trainable_tensors"])  # LoRA's tensors and the head's
    recorded = RunStore(run_dir).read_predictions(job.job_id)["test_logit"]
    assert np.array_equal(rebuilt_predictions(job, wise_model(run_dir, job.job_id, 1.0))["top_logits"], recorded)
    initial_model = rebuild(run_dir, job.job_id).model.eval()  # zero LoRA deltas, the semantic head: as initialised
    assert np.array_equal(rebuilt_predictions(job, wise_model(run_dir, job.job_id, 0.0))["top_logits"],
                          rebuilt_predictions(job, initial_model)["top_logits"])
    parent = load_parent(run_dir, job.job_id)
    assert set(parent.finetuned) == set(result.params["trainable_tensors"]) and parent.result.job_id == job.job_id


def test_a_weights_file_without_the_attached_modules_initial_values_is_refused(tmp_path, lora_run):
    """A file written before ltbench kept them (the classifier's initial values only) still loads, but has no
    α = 0 end: wise refuses it and names the fix."""
    run_dir, job, _ = lora_run
    shutil.copytree(run_dir, tmp_path / "run")
    store = RunStore(tmp_path / "run")
    path = store.weights_path(job.job_id)
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    old = {name: value for name, value in tensors.items()
           if not name.startswith(INITIAL) or name == INITIAL + "head.weight"}
    save_file(old, str(path), metadata={**metadata, "sha256": tensor_digest(old)})
    result = store.load(job.job_id)
    result.weights.update(sha256=tensor_digest(old), bytes=path.stat().st_size, initial_tensors=1)
    store.save(result)
    bench.load_job(store.run_dir, job.job_id)  # load_job needs no initial values
    with pytest.raises(WeightsFileError, match="holds no initial values of 16 tensors") as info:
        wise_model(store.run_dir, job.job_id, 0.5)
    assert "--save-weights --force" in str(info.value) and str(path) in str(info.value)
