"""The remedy interface, and what every derived job shares: its parents' results, its evaluation, its result.

A remedy (WiSE-FT, a model soup, a post-hoc correction) plans derived jobs from a run's main jobs (`children`) and
runs one (`run`). A derived job is an ordinary job (its own id, lock, result, failure record, resume), run after
its parents; it reads what they left in the run folder (`needs`: their weights files or their cached features)
and never trains the backbone again.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import open_clip
import torch

import bench
from bench.evaluation import classification_metrics, top_predictions
from bench.job_result import JobResult
from bench.registry import REMEDIES
from bench.results import RunStore
from bench.training import Derivation, Job
from bench.training.context import JobContext

WEIGHTS, FEATURES = "weights", "features"  # what a remedy reads of its parents


class DerivedJobError(RuntimeError):
    """A derived job cannot run: a parent did not finish, or left nothing it reads; the message names the fix."""


def register_remedy(name: str):
    """Class decorator: register a Remedy subclass under `name` (its `name` attribute is set too)."""

    def decorator(cls: type["Remedy"]) -> type["Remedy"]:
        cls.name = name
        return REMEDIES.register(name)(cls)

    return decorator


@dataclass(frozen=True)
class PlanContext:
    """What a remedy's planning reads of the run: whether the parents' data set has a validation split (and how to
    ask for one), and the metric --select picks on."""

    has_validation: bool
    validation_fix: str
    select_metric: str


class Remedy:
    """Subclasses set `recipe` (the settings `--set NAME.FIELD` changes), `needs`, `source` (the paper), and
    implement `applies`, `children` and `run`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    recipe: ClassVar[Any] = None
    needs: ClassVar[str] = WEIGHTS

    def applies(self, parent: Job) -> str | None:
        """Why this remedy does not apply to the parent's regime, or None."""
        return None

    def groups(self, parents: list[Job], candidates: list[dict]) -> list[list[Job]]:
        """The parent sets of one derived family: each main job alone (a soup takes several)."""
        return [[parent] for parent in parents]

    def children(self, parents: list[Job], recipe: Any, context: PlanContext) -> tuple[list[Derivation], list[str]]:
        """The derived jobs of one parent set, and a line for each one that is not planned and why."""
        raise NotImplementedError

    def run(self, job: Job, ctx: JobContext) -> JobResult:
        raise NotImplementedError


def parent_result(store: RunStore, parent_id: str, child: Job) -> JobResult:
    """A parent's full result; DerivedJobError when it is missing or did not finish."""
    result = store.load(parent_id)
    if result is None:
        raise DerivedJobError(f"{child.label}: its parent job {parent_id} has no result in {store.run_dir}; rerun "
                              f"the command, which runs the parent first")
    if result.status != "ok":
        raise DerivedJobError(f"{child.label}: its parent {result.label} did not finish ({result.status}: "
                              f"{getattr(result, 'error', '')})")
    return result


def evaluation_context(ctx: JobContext) -> JobContext:
    """The job's context without the run's feature cache: a derived model's tower may hold no trainable tensor and
    still differ from the pretrained one, whose cached features would be read for it."""
    return dataclasses.replace(ctx, cache=None)


def evaluate_model(model, data, recipe, ctx: JobContext) -> tuple[dict, dict]:
    """A derived model's metrics on the test and validation splits, seen as its parent's were (TTE or not), and the
    test split's predictions."""
    from bench.training.engine import evaluate_splits

    metrics, evaluated = evaluate_splits(model, data, "tte" if recipe.tte else "test", evaluation_context(ctx))
    return metrics, evaluated["test"]


@torch.no_grad()
def evaluate_head(head: torch.nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                  train_counts: np.ndarray, device: torch.device) -> tuple[dict, dict]:
    """Metrics of a head on cached features, per split ("test", "val" where cached), as a job's evaluation
    reports them, and the test split's predictions and their logits."""
    metrics, tested = {}, {}
    for split in ("test", "val"):
        if split not in splits:
            continue
        start = time.perf_counter()
        features, labels = splits[split]
        preds, top = top_predictions(head.to(device), features, device)
        metrics[split] = {**classification_metrics(preds, labels.numpy(), train_counts),
                          "seconds": time.perf_counter() - start, "tte": features.shape[1] > 1}
        if split == "test":
            tested = {"predictions": preds, "top_logits": top, "labels": labels}
    return metrics, tested


def derived_result(job: Job, ctx: JobContext, parent: JobResult, metrics: dict, tested: dict, start: float,
                   details: dict | None = None) -> JobResult:
    """The derived job's result: the parent's data set and parameter counts, its own metrics and predictions,
    and in `derived` what it was made of (parents, settings) and found (a greedy soup's ingredients, ...)."""
    predictions = ctx.store.save_predictions(job.job_id, {
        "test": tested["predictions"], "test_logit": tested["top_logits"],
        "test_label": np.asarray(tested["labels"])}) if ctx.store else None
    return JobResult(
        job_id=job.job_id, label=job.label, config=job.config(),
        runtime={**dataclasses.asdict(job.runtime), "device": str(ctx.device), "precision": ctx.precision,
                 "loader_workers": ctx.workers},
        dataset=parent.dataset, split_fingerprint=parent.split_fingerprint, hparam_sources=job.hparam_sources,
        activation=parent.activation, resolved=parent.resolved, metrics=metrics, statistics=None,
        params=parent.params, predictions=predictions, epochs=parent.epochs,
        derived={**job.derived.record(), **(details or {})},
        timings={"setup_s": None, "train_s": None,
                 "eval_s": sum(m["seconds"] for m in metrics.values()), "total_s": time.perf_counter() - start},
        versions={"ltbench": bench.__version__, "torch": torch.__version__, "open_clip": open_clip.__version__})
