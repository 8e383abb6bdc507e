"""`train(job) -> result`: build the job's data, backbone and regime, then fit, evaluate and measure."""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import open_clip
import torch

import bench
from bench.cache import DiskCache
from bench.data import DataError, build_dataset, check_images
from bench.evaluation import classification_metrics, predict_from_features
from bench.features import frozen_features, frozen_tower, split_features
from bench.models.backbone import activation_of, input_size, load_backbone
from bench.results import RunStore
from bench.statistics import class_statistics, group_summary
from regimes import get_regime

from .checkpoint import EpochCheckpoint
from .job import Job
from .loop import fit
from .precision import peak_memory_mb, resolve_device, resolve_precision, seed_everything

log = logging.getLogger(__name__)


def evaluate(model, data, split: str, *, tte: bool, job: Job, device, precision, workers,
             cache: DiskCache | None) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Metrics of one split, and its features (N×crops×D) and labels."""
    start = time.perf_counter()
    extracted = split_features(model, data, split, tte=tte, job=job, device=device, precision=precision,
                               workers=workers, cache=cache)
    preds = predict_from_features(model.head, extracted["features"], device)
    metrics = classification_metrics(preds, extracted["labels"].numpy(), data.train_class_counts)
    metrics["seconds"] = time.perf_counter() - start
    metrics["tte"] = tte
    return metrics, extracted["features"], extracted["labels"]


def train(job: Job) -> dict:
    """Build the job's data, backbone and regime, train (resuming from a checkpoint), evaluate; return the
    JSON-ready result."""
    start = time.perf_counter()
    runtime = job.runtime
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    workers = runtime.loader_workers if runtime.loader_workers is not None else (
        0 if device.type == "cpu" else min(8, os.cpu_count() or 1))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        if device.index is not None:
            torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    store = RunStore(runtime.run_dir) if runtime.run_dir else None
    cache = DiskCache(store.run_dir / "cache") if store else None
    data = build_dataset(job.dataset_config, runtime.data_root, runtime.download)
    if job.data_fingerprint and check_images(data) != job.data_fingerprint:
        raise DataError(f"{job.label}: the split files or images of {job.dataset} changed after this run was "
                        f"planned; rerun the command, which plans new jobs for the new data")
    regime = get_regime(job.regime)
    recipe = job.recipe
    seed_everything(job.seed)
    backbone = load_backbone(job.model, job.pretrained, data.classnames, device, cache=cache, seed=job.seed,
                             quick_gelu=job.quick_gelu)
    activation = activation_of(backbone.visual)
    model = regime.build(backbone, data, recipe).to(device)
    trainable = model.trainable_parameters()
    n_trainable = sum(p.numel() for _, p in trainable)
    n_backbone = model.backbone_parameter_count()
    setup_s = time.perf_counter() - start
    log.info("%s: %d trainable parameters (%.3f%% of the backbone), %d epochs on %s/%s", job.label, n_trainable,
             100.0 * n_trainable / n_backbone, recipe.epochs, device, precision)

    train_start = time.perf_counter()
    checkpoint = EpochCheckpoint(store.checkpoint_path(job.job_id), job.job_id) if store else None
    history = fit(model, data, recipe, job, device, precision, workers, checkpoint, cache) \
        if recipe.epochs and trainable else []
    train_s = time.perf_counter() - train_start

    common = dict(job=job, device=device, precision=precision, workers=workers, cache=cache)
    metrics, features, labels = {}, {}, {}
    metrics["test"], features["test"], labels["test"] = evaluate(model, data, "test", tte=recipe.tte, **common)
    statistics = None
    if runtime.train_eval:
        metrics["train"], features["train"], labels["train"] = evaluate(model, data, "train", tte=False, **common)
        stats_start = time.perf_counter()
        if recipe.tte:  # the statistics compare single-crop features, like the papers'
            features["test"] = split_features(model, data, "test", tte=False, **common)["features"]
        frozen = None if frozen_tower(model) else frozen_features(job, data, input_size(model.visual), device,
                                                                    precision, workers, cache)
        stats = class_statistics({k: v[:, 0] for k, v in features.items()}, labels, data.num_classes,
                                 {k: v[:, 0] for k, v in frozen.items()} if frozen else
                                 {k: v[:, 0] for k, v in features.items()})
        statistics = {"groups": group_summary(stats, data.groups.as_dict()),
                      "seconds": time.perf_counter() - stats_start}
        if store:
            statistics["file"] = store.save_statistics(job.job_id, stats)
    return {
        "status": "ok",
        "job_id": job.job_id,
        "label": job.label,
        "config": job.config(),
        "runtime": {**dataclasses.asdict(runtime), "device": str(device), "precision": precision,
                    "loader_workers": workers},
        "dataset": data.summary(),
        "split_fingerprint": data.fingerprint,
        "data_fingerprint": job.data_fingerprint,
        "protocol": job.protocol,
        "hparam_sources": job.hparam_sources,
        "activation": activation,
        "metrics": metrics,
        "statistics": statistics,
        "params": {"trainable": n_trainable, "backbone": n_backbone,
                   "trainable_pct": 100.0 * n_trainable / n_backbone,
                   "trainable_tensors": [name for name, _ in trainable]},
        "epochs": recipe.epochs,
        "history": history,
        "timings": {"setup_s": setup_s, "train_s": train_s,
                    "train_images_per_s": (sum(h["images_per_s"] for h in history) / len(history)
                                           if history else None),
                    "eval_s": sum(m["seconds"] for m in metrics.values()),
                    "peak_memory_mb": peak_memory_mb(device),
                    "total_s": time.perf_counter() - start},
        "versions": {"ltbench": bench.__version__, "torch": torch.__version__,
                     "open_clip": open_clip.__version__},
    }
