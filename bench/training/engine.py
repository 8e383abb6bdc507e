"""`train(job) -> result`: the one training and evaluation path that every regime goes through."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time

import numpy as np
import open_clip
import torch
from torch.utils.data import DataLoader, TensorDataset

import bench
from bench.cache import DiskCache
from bench.data import DataError, build_dataset, check_images
from bench.data.loading import make_loader
from bench.data.transforms import set_epoch, test_transform, train_transform
from bench.evaluation import classification_metrics, extract_features, predict_from_features
from bench.models import LongTailModel, create_clip
from bench.models.backbone import activation_of, input_mean_std, input_size, load_backbone, weights_identity
from bench.results import RunStore, atomic_file
from bench.statistics import class_statistics, group_summary
from regimes import get_regime

from .checkpoint import EpochCheckpoint
from .job import Job
from .losses import make_loss

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {name!r}; valid: auto, fp32, bf16, fp16")
    if name != "fp32" and device.type != "cuda":
        raise ValueError(f"mixed precision {name} needs a GPU; use --precision fp32 on {device}")
    return name


def seed_everything(seed: int) -> None:
    """Python, numpy and torch from one seed; numpy takes 32 bits, so larger derived seeds wrap (every
    seed below 2^32 seeds numpy exactly as before)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_factory(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def epoch_seed(seed: int, epoch: int) -> int:
    """Every epoch reseeds order and augmentation, so a run resumed from a checkpoint matches an unbroken one."""
    return seed * 100_003 + epoch


def _progress(job: Job, epoch: int, epochs: int, steps: int):
    if not job.runtime.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"{job.label} {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True,
                position=job.runtime.progress_position)


def make_optimiser(params, recipe, device: torch.device, kernel: str = "auto") -> torch.optim.SGD:
    """SGD with momentum. `kernel`: "fused" (one CUDA kernel for every tensor), "foreach" (batched), "loop"
    (one tensor at a time, the benchmark's plain baseline) or "auto" (fused on GPU, torch's default on CPU).
    They compute the same update."""
    if kernel == "auto":
        kernel = "fused" if device.type == "cuda" else "default"
    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False},
               "default": {}}
    if kernel not in options:
        raise ValueError(f"unknown optimiser kernel {kernel!r}; valid: auto, {', '.join(options)}")
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           **options[kernel])


def train_step(model, optimiser, criterion, images, labels, micro: int, autocast, scaler) -> tuple[torch.Tensor, int]:
    """One optimiser step on a batch, accumulated exactly over micro-batches; (batch loss, correct predictions)."""
    optimiser.zero_grad(set_to_none=True)
    batch_loss = torch.zeros((), device=images.device)
    correct = 0
    for x, y in zip(images.split(micro), labels.split(micro)):
        with autocast():
            logits = model(x)
        # mean loss of the micro-batch weighted by its share of the batch: the sum equals the batch mean
        loss = criterion(logits.float(), y) * (len(y) / len(labels))
        (scaler.scale(loss) if scaler else loss).backward()
        batch_loss += loss.detach()
        correct += int((logits.argmax(dim=1) == y).sum())
    return batch_loss, correct


def optimiser_step(optimiser, scaler) -> None:
    if scaler:
        scaler.step(optimiser)
        scaler.update()
    else:
        optimiser.step()


def _training_batches(model, data, recipe, job: Job, device, precision, workers, cache):
    """(network, loader, transform) of the training loop. A frozen tower under the deterministic transform
    (augmentation "none") sees the same features every epoch: they are computed once (and cached), and the
    epochs train the head on them, in the same shuffled order as the images would come."""
    if _frozen_tower(model) and recipe.augmentation == "none":
        cached = split_features(model, data, "train", tte=False, job=job, device=device, precision=precision,
                                workers=workers, cache=cache, view="train")
        generator = torch.Generator()
        generator.manual_seed(job.seed)
        loader = DataLoader(TensorDataset(cached["features"][:, 0], cached["labels"]), batch_size=recipe.batch_size,
                            shuffle=True, generator=generator)
        return model.head, loader, None
    mean, std = input_mean_std(model.visual)
    transform = train_transform(recipe.augmentation, input_size(model.visual), recipe.epochs, mean, std)
    loader = make_loader(data.train, transform, recipe.batch_size, shuffle=True, seed=job.seed, workers=workers,
                         pin_memory=device.type == "cuda")
    return model, loader, transform


def fit(model, data, recipe, job: Job, device, precision, workers, checkpoint: EpochCheckpoint | None = None,
        cache: DiskCache | None = None) -> list[dict]:
    """SGD + momentum with a cosine schedule stepped per epoch; exact gradient accumulation over micro-batches."""
    optimiser = make_optimiser([p for _, p in model.trainable_parameters()], recipe, device)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)
    criterion = make_loss(recipe.loss, data.train_class_counts, recipe.la_tau).to(device)
    network, loader, transform = _training_batches(model, data, recipe, job, device, precision, workers, cache)
    micro = job.runtime.micro_batch_size or recipe.batch_size
    autocast = autocast_factory(device, precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    first_epoch, history = checkpoint.restore(model, optimiser, schedule, scaler) if checkpoint else (0, [])
    for epoch in range(first_epoch, recipe.epochs):
        seed_everything(epoch_seed(job.seed, epoch))
        loader.generator.manual_seed(epoch_seed(job.seed, epoch))
        if transform is not None:
            set_epoch(transform, epoch)
        model.train()
        lr = optimiser.param_groups[0]["lr"]
        start, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = _progress(job, epoch, recipe.epochs, len(loader))
        for step, (images, labels) in enumerate(loader):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            batch_loss, batch_correct = train_step(network, optimiser, criterion, images, labels, micro, autocast,
                                                   scaler)
            correct += batch_correct
            value = float(batch_loss)
            if not math.isfinite(value):
                raise NonFiniteLossError(f"{job.label}: loss is {value} at epoch {epoch + 1}, step {step + 1} "
                                         f"(lr {lr:g}); lower the learning rate or use --precision fp32")
            optimiser_step(optimiser, scaler)
            seen += len(labels)
            loss_sum += value * len(labels)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{value:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        schedule.step()
        record = {"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "train_batch_acc": 100.0 * correct / seen,
                  "seconds": seconds, "images_per_s": seen / seconds}
        history.append(record)
        log.info("%s epoch %d/%d loss %.4f acc %.1f lr %.3g %.0f img/s", job.label, epoch + 1, recipe.epochs,
                 record["loss"], record["train_batch_acc"], lr, record["images_per_s"])
        if checkpoint and epoch + 1 < recipe.epochs:
            checkpoint.save(epoch + 1, model, optimiser, schedule, scaler, history)
    return history


def _frozen_tower(model) -> bool:
    return not any(p.requires_grad for p in model.visual.parameters())


def _features_key(job: Job, data, split: str, size: int, tte: bool, precision: str, view: str = "test") -> dict:
    key = {"kind": "features", "model": job.model,
           "weights": weights_identity(job.model, job.pretrained, job.seed, quick_gelu=job.quick_gelu),
           "split": split, "fingerprint": job.data_fingerprint or data.fingerprint, "size": size, "tte": tte, "precision": precision}
    return key if view == "test" else {**key, "view": view}


def _extract(model, data, split: str, *, tte: bool, job: Job, device, precision, workers, view: str = "test"
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
    """`_extract`, except that the features of a frozen tower, the same for every regime and seed on that
    backbone (zero-shot, linear probe, the drift statistics), are computed once per run and shared."""
    def compute() -> dict:
        return _extract(model, data, split, tte=tte, job=job, device=device, precision=precision, workers=workers,
                        view=view)

    if cache is None or not _frozen_tower(model):
        return compute()
    key = _features_key(job, data, split, input_size(model.visual), tte, precision, view)
    return cache.get_or_compute(key, compute)


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


def _frozen_features(job: Job, data, size: int, device, precision, workers, cache) -> dict[str, torch.Tensor]:
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
            return _extract(frozen_model(), data, split, tte=False, job=job, device=device, precision=precision,
                            workers=workers)

        key = _features_key(job, data, split, size, False, precision)
        out[split] = (cache.get_or_compute(key, compute) if cache is not None else compute())["features"]
    return out


def _peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by this process, or on CPU its peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        frozen = None if _frozen_tower(model) else _frozen_features(job, data, input_size(model.visual), device,
                                                                    precision, workers, cache)
        stats = class_statistics({k: v[:, 0] for k, v in features.items()}, labels, data.num_classes,
                                 {k: v[:, 0] for k, v in frozen.items()} if frozen else
                                 {k: v[:, 0] for k, v in features.items()})
        statistics = {"groups": group_summary(stats, data.groups.as_dict()),
                      "seconds": time.perf_counter() - stats_start}
        if store:
            path = store.stats_path(job.job_id)
            with atomic_file(path) as fh:
                np.savez_compressed(fh, **{k: (v.astype(np.float16) if k.endswith("means") else v)
                                           for k, v in stats.items()})
            statistics["file"] = str(path.relative_to(store.run_dir))
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
                    "peak_memory_mb": _peak_memory_mb(device),
                    "total_s": time.perf_counter() - start},
        "versions": {"ltbench": bench.__version__, "torch": torch.__version__,
                     "open_clip": open_clip.__version__},
    }
