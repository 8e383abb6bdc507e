"""WiSE-FT (Wortsman et al., CVPR 2022, "Robust fine-tuning of zero-shot models", arXiv:2109.01903) of a
finished job: the weight-space ensemble θ_α = (1 − α)·θ_0 + α·θ_1 of its initial model (θ_0) and its fine-tuned
one (θ_1).

What ltbench interpolates, by kind of tensor that trained:
- a backbone tensor (full, partial, bitfit, ln_tuning, sparse's chosen entries, proj_tuning's projections): θ_0 is
  its pretrained value, rebuilt as bench.load_job rebuilds it, θ_1 the saved one;
- the classifier (the class weights and bias of a head on the image features): θ_0 is its initialisation
  (semantic, random, class_mean or linear_probing), saved in the weights file under `initial.`;
- a module a regime attached at a site (any `Attachable.tuners`: LoRA, adapters, AdaptFormer, VPT's prompts, SSF,
  CoOp's context, CLIP-Adapter, a plugin's): its OUTPUT, (1 − α)·M_0(x) + α·M_1(x) (`Blend`), with M_0 the module
  at its initialisation (saved under `initial.`) and M_1 fine-tuned. For a module whose output is zero at init
  (LoRA's and the adapters' zero up projection) that is its fine-tuned output scaled by α, which interpolating its
  parameters is not (LoRA's x·A·B/r would become x·A_α·(α·B_1)/r, A_α between A_0 ≠ 0 and A_1); for a module
  linear in its parameters (SSF's scale-shift, VPT's prompts, CoOp's context) it equals parameter interpolation.

α = 0 is then exactly the initial model (the job's before its first step) and α = 1 exactly the fine-tuned one, for
every regime. The paper's α = 0 is the zero-shot model: here it is the pretrained backbone with the job's own
classifier initialisation (the zero-shot classifier under the semantic init). WiSE-FT applies to the jobs that
trained backbone-side tensors (`wise_applies`): a classifier-only job (linear_probe) has only its head to move, and
zero_shot nothing.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from bench.fields import check_fields, setting
from bench.models.sites import attached_modules, attached_parameters
from bench.results import RunStore
from bench.weights import INITIAL, WeightsFileError, finished_result, load_tensors, rebuild


DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass(frozen=True)
class WiseRecipe:
    """--set wise.alphas=0,0.5,1: the mixing coefficients, each a job."""

    alphas: tuple[float, ...] = setting(DEFAULT_ALPHAS, help="the mixing coefficients α in [0, 1], one job each: 0 the "
                                        "initial model, 1 the fine-tuned one")

    def __post_init__(self):
        check_fields(self)
        if not self.alphas:
            raise ValueError("alphas=(): give at least one α in [0, 1], e.g. --set wise.alphas=0,0.5,1")
        outside = [a for a in self.alphas if not 0.0 <= a <= 1.0]
        if outside:
            raise ValueError(f"alphas: {outside[0]:g} is outside [0, 1] (0 is the initial model, 1 the fine-tuned one)")
        if len(set(self.alphas)) != len(self.alphas):
            raise ValueError("alphas lists a value twice; list each α once")


class Blend(nn.Module):
    """(1 − α)·initial(x) + α·finetuned(x): an attached module's output interpolated, at its site."""

    def __init__(self, initial: nn.Module, finetuned: nn.Module, alpha: float):
        super().__init__()
        self.initial = initial
        self.finetuned = finetuned
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.alpha) * self.initial(x) + self.alpha * self.finetuned(x)


def wise_applies(result_or_params) -> str | None:
    """Why WiSE-FT does not apply to a job, from its result or the result's `params`, or None when it does: it
    needs tensors besides the classifier that trained (`backbone_trainable` > 0)."""
    params = getattr(result_or_params, "params", result_or_params) or {}
    if params.get("backbone_trainable") is None:
        return ("records no count of its backbone-side trainable tensors (a result from an older ltbench); rerun "
                "its command with --save-weights --force")
    if params["backbone_trainable"] > 0:
        return None
    if not params.get("trainable"):
        return "trains no tensor: there is no fine-tuned model to interpolate"
    return ("trains its classifier only: WiSE-FT interpolates the backbone-side tensors that trained (the "
            "post-hoc corrections act on a classifier)")


def _check_initial(model: nn.Module, initial: dict[str, torch.Tensor], source: str) -> None:
    """Refuse initial values that lack an attached module's tensor, or fit no trainable tensor of `model`."""
    missing = [name for name in attached_parameters(model) if name not in initial]
    if missing:
        raise WeightsFileError(f"{source} holds no initial values of {len(missing)} tensors of the modules the "
                               f"regime attached ({', '.join(missing[:3])}), WiSE-FT's α = 0 end: it was written "
                               f"before ltbench kept them; rerun the parent job's command with --save-weights --force")
    params = dict(model.trainable_parameters())
    unfit = sorted(name for name, value in initial.items()
                   if name not in params or value.shape != params[name].shape)
    if unfit:
        raise WeightsFileError(f"{source}: {len(unfit)} initial tensors fit no trainable tensor of the rebuilt model "
                               f"({', '.join(unfit[:3])})")


def interpolate(model: nn.Module, finetuned: dict[str, torch.Tensor], initial: dict[str, torch.Tensor],
                alpha: float) -> nn.Module:
    """WiSE-FT's α-model, in eval mode. `model` is the job's model as rebuilt before any saved tensor is loaded
    (bench.weights.rebuild: backbone pretrained, head and attached modules at some init), `finetuned` its saved
    trainable tensors (named as model.trainable_parameters()), `initial` their initial values (the weights file's
    `initial.` tensors, prefix stripped: the classifier's and every attached module's). Each attached module becomes
    a `Blend` of two copies; every other tensor that trained is set in place, from its initial value or else its
    rebuilt (pretrained) one. The trainable flags stay: the tower is not taken for a frozen one (cached features).
    `model` is changed and returned."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"wise: alpha={alpha:g} is outside [0, 1] (0 the initial model, 1 the fine-tuned one)")
    _check_initial(model, initial, "the initial tensors")
    start = {name: initial[name] if name in initial else param.detach().clone()
             for name, param in model.trainable_parameters()}
    load_tensors(model, finetuned, "trainable")  # strictly: exactly the trainable tensors, with their shapes
    attached = set(attached_parameters(model))
    with torch.no_grad():
        for name, param in model.trainable_parameters():
            if name not in attached:
                param.copy_((1.0 - alpha) * start[name].to(param) + alpha * param)
        for prefix, host, site in attached_modules(model):
            tuned = host.tuners[site]
            at_init = copy.deepcopy(tuned)
            for name, param in at_init.named_parameters():
                if param.requires_grad:
                    param.copy_(start[prefix + name])
            host.tuners[site] = Blend(at_init, tuned, alpha)
    return model.eval()


class Parent(NamedTuple):
    """What `interpolate` needs of a finished job, and its result."""

    model: nn.Module
    finetuned: dict[str, torch.Tensor]
    initial: dict[str, torch.Tensor]
    result: object


def load_parent(run_dir: str | Path, job_id: str, device: str | torch.device = "cpu") -> Parent:
    """A finished job's model rebuilt before loading (on `device`), its saved trainable tensors and their initial
    values, read and checked by bench.weights. Refused as bench.load_job refuses (WeightsFileError naming the fix:
    unknown job, unfinished, no weights file, a damaged one), when WiSE-FT does not apply to it (ValueError), and
    when its weights file predates the attached modules' initial values."""
    result = finished_result(RunStore(run_dir), job_id)
    reason = wise_applies(result)
    if reason:
        raise ValueError(f"wise: job {result.label} ({job_id}) {reason}")
    model, tensors, metadata, result = rebuild(run_dir, job_id, device)
    finetuned = {name: tensors[name] for name in json.loads(metadata["trainable"])}
    initial = {name[len(INITIAL):]: value for name, value in tensors.items() if name.startswith(INITIAL)}
    _check_initial(model, initial, f"the weights file {Path(run_dir) / result.weights['file']}")
    return Parent(model, finetuned, initial, result)


def wise_model(run_dir: str | Path, job_id: str, alpha: float, device: str | torch.device = "cpu") -> nn.Module:
    """WiSE-FT's α-model of the finished job `job_id` in `run_dir`, in eval mode on `device`."""
    model, finetuned, initial, _ = load_parent(run_dir, job_id, device)
    return interpolate(model, finetuned, initial, alpha)
