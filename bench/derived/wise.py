"""`wise`: WiSE-FT (Wortsman et al., CVPR 2022), one derived job per α, each evaluated as its parent would be."""
from __future__ import annotations

import time

from bench.registry import REGIMES
from bench.remedies.wise import WiseRecipe
from bench.training import Derivation, Job

from .base import WEIGHTS, Remedy, derived_result, evaluate_model, parent_result, register_remedy


@register_remedy("wise")
class WiSEFT(Remedy):
    """θ_α = (1 − α)·θ_0 + α·θ_1 on the backbone tensors that trained and the classifier (θ_0: its initialisation);
    an injected module's output is mixed, (1 − α)·M_0(x) + α·M_1(x), which for LoRA's and AdaptFormer's
    zero-initialised up projections is their output scaled by α (bench.remedies.wise)."""

    summary = "weight-space ensembling of the fine-tuned and the initial model, one job per α"
    source = "Wortsman et al., Robust fine-tuning of zero-shot models (WiSE-FT), CVPR 2022"
    recipe = WiseRecipe()
    needs = WEIGHTS

    def applies(self, parent: Job) -> str | None:
        if not REGIMES.get(parent.regime).changes_backbone(parent.recipe):
            return (f"{parent.regime} trains no backbone tensor (WiSE-FT mixes fine-tuned and pretrained backbone "
                    f"weights)")
        return None

    def children(self, parents: list[Job], recipe: WiseRecipe, context) -> tuple[list[Derivation], list[str]]:
        return [Derivation("wise", "wise", (parents[0].job_id,), "alpha", alpha) for alpha in recipe.alphas], []

    def run(self, job: Job, ctx) -> object:
        from bench.remedies.wise import wise_model
        from bench.training.engine import job_data

        start = time.perf_counter()
        parent = parent_result(ctx.store, job.derived.parents[0], job)
        data = job_data(job)
        model = wise_model(ctx.store.run_dir, parent.job_id, job.derived.value, ctx.device)
        metrics, tested = evaluate_model(model, data, job.recipe, ctx)
        return derived_result(job, ctx, parent, metrics, tested, start)
