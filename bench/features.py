"""Features of a split through a model: one entry, `features`, and one cache key for every caller.

A frozen tower's features are the same for every regime and seed on that backbone (zero-shot, linear probe,
the drift statistics, a head trained on cached features), so they are computed once per run and shared.
"""
from __future__ import annotations

import torch

from bench.data.loading import make_loader
from bench.data.transforms import resize_for_test, resize_mode, test_transform, train_transform
from bench.evaluation import extract_features
from bench.models import LongTailModel, create_clip
from bench.models.backbone import input_mean_std, input_size, weights_identity
from bench.training.context import JobContext
from bench.training.precision import autocast_factory, seed_everything

VIEWS = ("test", "tte", "train")  # test transform, its 5-crop ensemble, the deterministic training transform


def frozen_tower(model) -> bool:
    """Nothing of the image tower trains: its features do not depend on the regime."""
    return not any(p.requires_grad for p in model.visual.parameters())


def features_key(ctx: JobContext, data, split: str, view: str, size: int) -> dict:
    """What names a split's features in the run's cache: backbone, weights, data, view and precision."""
    job = ctx.job
    key = {"kind": "features", "model": job.model,
           "weights": weights_identity(job.model, job.pretrained, job.seed, quick_gelu=job.quick_gelu),
           "split": split, "fingerprint": job.data_fingerprint or data.fingerprint, "size": size,
           "tte": view == "tte", "precision": ctx.precision}
    if job.recipe.interpolation != "bicubic":  # bicubic keys stay as they were before the choice existed
        key["interpolation"] = job.recipe.interpolation
    if view == "train":
        return {**key, "view": view}
    return {**key, "resize": resize_for_test(size, view == "tte", job.recipe.expand)}


class PretrainedTower:
    """A job's untouched pretrained image tower, built on first use: only when the cache lacks its features."""

    def __init__(self, ctx: JobContext, size: int):
        self.ctx, self.size = ctx, size  # size: its input size, which names its cache entries
        self._model: LongTailModel | None = None

    def __call__(self) -> LongTailModel:
        if self._model is None:
            job = self.ctx.job
            seed_everything(job.seed)  # random weights: the same draw as the job's backbone
            tower = create_clip(job.model, job.pretrained, quick_gelu=job.quick_gelu).visual.requires_grad_(False)
            self._model = LongTailModel(tower, torch.nn.Identity()).to(self.ctx.device)
        return self._model


def split_loader(model: LongTailModel, data, split: str, view: str, ctx: JobContext):
    """The loader that `features` reads `split` through `model` with: `view`'s transform, in the split's order."""
    mean, std = input_mean_std(model.visual)
    size = input_size(model.visual)
    resize, interpolation = resize_mode(ctx.job.runtime), ctx.job.recipe.interpolation
    transform = (train_transform("none", size, 1, mean, std, uint8=True, resize=resize, interpolation=interpolation)
                 if view == "train" else
                 test_transform(size, mean, std, tte=view == "tte", expand=ctx.job.recipe.expand, uint8=True,
                                resize=resize, interpolation=interpolation))
    batch = max(1, ctx.job.runtime.eval_batch_size // (5 if view == "tte" else 1))
    return make_loader(data.splits[split], transform, batch, shuffle=False,
                       seed=ctx.job.seed, workers=ctx.workers, pin_memory=ctx.device.type == "cuda")


def _extract(model: LongTailModel, data, split: str, view: str, ctx: JobContext) -> dict:
    loader = split_loader(model, data, split, view, ctx)
    features, labels = extract_features(model, loader, ctx.device, autocast_factory(ctx.device, ctx.precision))
    return {"features": features, "labels": labels}


def features(model: LongTailModel | PretrainedTower, data, split: str, view: str, ctx: JobContext) -> dict:
    """{"features": N×crops×D, "labels": N} of `split` ("train", "test" or "val") through `model` seen through `view`.

    A frozen tower's features (a PretrainedTower's always) come from the run's cache; a tower that trains is
    read afresh."""
    if view not in VIEWS:
        raise ValueError(f"unknown feature view {view!r}; valid: {', '.join(VIEWS)}")
    pretrained = isinstance(model, PretrainedTower)

    def compute() -> dict:
        return _extract(model() if pretrained else model, data, split, view, ctx)

    if ctx.cache is None or not (pretrained or frozen_tower(model)):
        return compute()
    key = features_key(ctx, data, split, view, model.size if pretrained else input_size(model.visual))
    return ctx.cache.get_or_compute(key, compute)
