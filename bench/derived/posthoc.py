"""`posthoc`: the classic long-tail corrections applied after training, on the parent's cached features: τ-normalised
class weights and cRT/LWS (Kang et al., ICLR 2020), post-hoc logit adjustment (Menon et al., ICLR 2021)."""
from __future__ import annotations

import time

import numpy as np

from bench.registry import REGIMES
from bench.remedies.posthoc import PosthocRecipe
from bench.training import Derivation, Job

from .base import FEATURES, DerivedJobError, PlanContext, Remedy, derived_result, evaluate_head, parent_result, \
    register_remedy

TAU_METHODS = {"tau_norm": "tau_norm_taus", "logit_adjust": "adjust_taus"}  # method -> its recipe's τ list
TRAINED = ("crt", "lws")


@register_remedy("posthoc")
class PostHoc(Remedy):
    """One derived job per correction and τ (τ chosen on the validation split in the report when there is one;
    else every τ is shown); cRT and LWS train on the cached training features with class-balanced sampling."""

    summary = "τ-normalisation, post-hoc logit adjustment, cRT and LWS on the parent's cached features"
    source = ("Kang et al., Decoupling representation and classifier for long-tailed recognition, ICLR 2020; "
              "Menon et al., Long-tail learning via logit adjustment, ICLR 2021")
    needs = FEATURES

    recipe = PosthocRecipe()

    def applies(self, parent: Job) -> str | None:
        if REGIMES.get(parent.regime)().uses_text_tower(parent.recipe):
            return (f"{parent.regime} classifies with the text encoder (classifier=text): its logits are no matrix on "
                    f"cached image features")
        return None

    def children(self, parents: list[Job], recipe, context: PlanContext) -> tuple[list[Derivation], list[str]]:
        parent = parents[0]
        head = "zero_shot" if parent.regime == "zero_shot" else parent.recipe.classifier
        children, notes = [], []
        for method in recipe.methods:
            if method == "tau_norm" and head != "linear":
                notes.append(f"posthoc tau_norm: {parent.label}'s {head} head already uses unit-norm class weights, "
                             f"so τ-normalisation changes nothing; not run")
            elif method == "crt" and head == "zero_shot":
                notes.append(f"posthoc crt: {parent.label}'s zero-shot head holds no trained weights to re-train; "
                             f"not run (lws and logit_adjust are)")
            elif method in TAU_METHODS:
                children += [Derivation("posthoc", method, (parent.job_id,), "tau", tau)
                             for tau in getattr(recipe, TAU_METHODS[method])]
            else:
                settings = {"epochs": recipe.epochs, "lr": recipe.lr or parent.recipe.lr,
                            "batch_size": recipe.batch_size or parent.recipe.batch_size,
                            "weight_decay": parent.recipe.weight_decay if recipe.weight_decay is None
                            else recipe.weight_decay, "momentum": recipe.momentum}
                children.append(Derivation("posthoc", method, (parent.job_id,), settings=tuple(settings.items())))
        return children, notes

    def run(self, job: Job, ctx):
        from bench.remedies.cached import load_cached_features
        from bench.remedies.posthoc import logit_adjusted, tau_normalised, train_crt, train_lws

        start = time.perf_counter()
        parent = parent_result(ctx.store, job.derived.parents[0], job)
        record = parent.features or {}
        if not record.get("file"):
            raise DerivedJobError(f"{job.label}: its parent {parent.label} ran without caching its features; rerun "
                                  f"the command with --force")
        cached = load_cached_features(ctx.store.run_dir / record["file"], parent.job_id, record.get("sha256"))
        counts = np.asarray(parent.dataset["train_class_counts"])
        variant, value = job.derived.variant, job.derived.value
        if variant == "tau_norm":
            head = tau_normalised(cached.head, value)
        elif variant == "logit_adjust":
            head = logit_adjusted(cached.head, counts, value)
        else:
            train = train_crt if variant == "crt" else train_lws
            features, labels = cached.splits["train"]
            head = train(cached.head.to(ctx.device), features, labels, **dict(job.derived.settings), seed=job.seed)
        metrics, tested = evaluate_head(head, cached.splits, counts, ctx.device)
        return derived_result(job, ctx, parent, metrics, tested, start)
