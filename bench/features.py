"""Features of a split through a model: one extraction path, one cache key for every caller.

A frozen tower's features are the same for every regime and seed on that backbone (zero-shot, linear probe,
the drift statistics, a head trained on cached features), so they are computed once per run and shared.
"""
from __future__ import annotations

import torch

from bench.cache import DiskCache
from bench.data.loading import make_loader
from bench.data.transforms import test_transform, train_transform
from bench.evaluation import extract_features
from bench.models import LongTailModel, create_clip
from bench.models.backbone import input_mean_std, input_size, weights_identity
from bench.training.job import Job
from bench.training.precision import autocast_factory, seed_everything


def frozen_tower(model) -> bool:
    """Nothing of the image tower trains: its features do not depend on the regime."""
    return not any(p.requires_grad for p in model.visual.parameters())


def features_key(job: Job, data, split: str, size: int, tte: bool, precision: str, view: str = "test") -> dict:
    """What names a split's features in the run's cache: backbone, weights, data, view and precision."""
    key = {"kind": "features", "model": job.model,
           "weights": weights_identity(job.model, job.pretrained, job.seed, quick_gelu=job.quick_gelu),
           "split": split, "fingerprint": job.data_fingerprint or data.fingerprint, "size": size, "tte": tte,
           "precision": precision}
    return key if view == "test" else {**key, "view": view}


def extract(model, data, split: str, *, tte: bool, job: Job, device, precision, workers, view: str = "test"
             ) -> dict:
    """Features (N×crops×D) and labels of one split through `model`, seen through the test transform, or
    (view "train") through the recipe's deterministic training transform (augmentation "none")."""
    mean, std = input_mean_std(model.visual)
    size = input_size(model.visual)
    transform = test_transform(size, mean, std, tte=tte) if view == "test" else train_transform("none", size, 1,
                                                                                                 mean, std)
    batch = max(1, job.runtime.eval_batch_size // (5 if tte else 1))
    loader = make_loader(data.test if split == "test" else data.train, transform, batch, shuffle=False,
                         seed=job.seed, workers=workers, pin_memory=device.type == "cuda")
    features, labels = extract_features(model, loader, device, autocast_factory(device, precision))
    return {"features": features, "labels": labels}


def split_features(model, data, split: str, *, tte: bool, job: Job, device, precision, workers,
                   cache: DiskCache | None, view: str = "test") -> dict:
    """`extract`, except that the features of a frozen tower, the same for every regime and seed on that
    backbone (zero-shot, linear probe, the drift statistics), are computed once per run and shared."""
    def compute() -> dict:
        return extract(model, data, split, tte=tte, job=job, device=device, precision=precision, workers=workers,
                        view=view)

    if cache is None or not frozen_tower(model):
        return compute()
    key = features_key(job, data, split, input_size(model.visual), tte, precision, view)
    return cache.get_or_compute(key, compute)


def frozen_features(job: Job, data, size: int, device, precision, workers, cache) -> dict[str, torch.Tensor]:
    """Single-crop features of both splits through the untouched pretrained tower: from the run's cache (shared
    with zero-shot and linear-probe jobs), the tower being built only when a split is not there."""
    towers = []

    def frozen_model() -> LongTailModel:
        if not towers:
            seed_everything(job.seed)  # random weights: the same draw as the job's backbone
            tower = create_clip(job.model, job.pretrained, quick_gelu=job.quick_gelu).visual.requires_grad_(False)
            towers.append(LongTailModel(tower, torch.nn.Identity()).to(device))
        return towers[0]

    out = {}
    for split in ("train", "test"):
        def compute(split=split) -> dict:
            return extract(frozen_model(), data, split, tte=False, job=job, device=device, precision=precision,
                            workers=workers)

        key = features_key(job, data, split, size, False, precision)
        out[split] = (cache.get_or_compute(key, compute) if cache is not None else compute())["features"]
    return out
