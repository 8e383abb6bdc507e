"""`soup`: model soups (Wortsman et al., ICML 2022) over a main job's seeds or its --select candidates: the
uniform soup, and the greedy soup picked on the validation split."""
from __future__ import annotations

import json
import time
from collections import defaultdict

from bench.job_result import recipe_id
from bench.models.backbone import RANDOM_WEIGHTS
from bench.overrides import OverrideError
from bench.registry import REGIMES
from bench.remedies.soup import SoupRecipe
from bench.training import Derivation, Job
from bench.weights import INITIAL, load_tensors, rebuild, saved_tensors

from .base import (WEIGHTS, DerivedJobError, PlanContext, Remedy, derived_result, evaluate_model, evaluation_context,
                   parent_result, register_remedy)


@register_remedy("soup")
class ModelSoup(Remedy):
    """Ingredients: the seeds of one recipe, or the --select candidates of one seed (one initialisation each:
    checked on their saved initial tensors). Only the tensors that trained are averaged."""

    summary = "the mean of several fine-tunings' weights: uniform, and greedy on the validation split"
    source = "Wortsman et al., Model soups, ICML 2022"
    needs = WEIGHTS

    recipe = SoupRecipe()

    def applies(self, parent: Job) -> str | None:
        if not REGIMES.get(parent.regime).trains:
            return f"{parent.regime} trains nothing: there is no fine-tuning to soup"
        return None

    def groups(self, parents: list[Job], candidates: list[dict]) -> list[list[Job]]:
        """--select candidates of one data set, regime and seed; else the seeds of one recipe."""
        chosen = {c["job_id"] for c in candidates}
        groups: dict[tuple, list[Job]] = defaultdict(list)
        for job in parents:
            key = (job.dataset, job.regime, job.seed) if job.job_id in chosen else recipe_id(job.config())
            groups[key].append(job)
        return list(groups.values())

    def children(self, parents: list[Job], recipe, context: PlanContext) -> tuple[list[Derivation], list[str]]:
        if len(parents) < 2:
            return [], [f"soup: {parents[0].label} has no other fine-tuning of its initialisation to soup with "
                        f"(give --seeds 0 1 2, or --select candidates such as lr=0.005,0.01,0.02)"]
        ids = tuple(job.job_id for job in parents)
        over = "candidates" if len({job.seed for job in parents}) == 1 else "seeds"
        if over == "seeds" and parents[0].pretrained.strip().lower() in RANDOM_WEIGHTS:
            return [], [f"soup: not run on {parents[0].regime} over seeds: with random weights (--pretrained "
                        f"{parents[0].pretrained}) each seed draws its own backbone, and only fine-tunings of one "
                        f"initialisation can be souped; soup --select candidates of one seed instead"]
        children = [Derivation("soup", "uniform_soup", ids, settings=(("over", over),))]
        if recipe.greedy:
            if not context.has_validation:
                raise OverrideError(f"soup: the greedy soup picks its ingredients on a validation split, and "
                                    f"{parents[0].dataset} has none: {context.validation_fix}, or "
                                    f"--set soup.greedy=false for the uniform soup alone")
            children.append(Derivation("soup", "greedy_soup", ids,
                                       settings=(("over", over), ("metric", context.select_metric))))
        return children, []

    def run(self, job: Job, ctx):
        from bench.remedies.soup import average_tensors, greedy_soup, same_initialisation
        from bench.training.engine import evaluate, job_data

        start = time.perf_counter()
        parents = [parent_result(ctx.store, parent_id, job) for parent_id in job.derived.parents]
        rebuilt = rebuild(ctx.store.run_dir, parents[0].job_id, ctx.device)
        model = rebuilt.model
        saved = [(rebuilt.tensors, rebuilt.metadata)] + [saved_tensors(ctx.store, p) for p in parents[1:]]
        problem = same_initialisation([{n: t for n, t in tensors.items() if n.startswith(INITIAL)}
                                       for tensors, _ in saved])
        if problem:
            raise DerivedJobError(f"{job.label}: {problem}")
        tuned = [{name: tensors[name] for name in json.loads(metadata["trainable"])} for tensors, metadata in saved]
        data = job_data(job)
        view = "tte" if job.recipe.tte else "test"
        details = {}
        chosen = list(range(len(parents)))
        if job.derived.variant == "greedy_soup":
            metric = dict(job.derived.settings)["metric"]
            scores = [(p.metrics.get("val") or {}).get(metric) for p in parents]
            if any(score is None for score in scores):
                raise DerivedJobError(f"{job.label}: a parent has no validation {metric}; the greedy soup orders "
                                      f"its ingredients by it")

            def held_out(indices: list[int]) -> float:
                load_tensors(model, average_tensors([tuned[i] for i in indices]), "trainable")
                return evaluate(model.eval(), data, "val", view, evaluation_context(ctx))[0][metric]

            chosen, trace = greedy_soup(scores, held_out)
            details = {"ingredients": [parents[i].job_id for i in chosen], "trace": trace}
        load_tensors(model, average_tensors([tuned[i] for i in chosen]), "trainable")
        metrics, tested = evaluate_model(model.eval(), data, job.recipe, ctx)
        return derived_result(job, ctx, parents[0], metrics, tested, start, details)
