"""`fit`: the training loop every regime goes through."""
from __future__ import annotations

import logging
import math
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.data.loading import make_loader, to_device
from bench.data.transforms import resize_mode, set_epoch, train_transform
from bench.features import features, frozen_tower
from bench.models.backbone import input_mean_std, input_size
from bench.tracking import JobTrackers

from .checkpoint import EpochCheckpoint
from .context import JobContext
from .job import Job
from .losses import make_loss
from .optim import make_optimiser, optimiser_step, train_step
from .precision import autocast_factory, epoch_seed, seed_everything

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _progress(job: Job, epoch: int, epochs: int, steps: int):
    if not job.runtime.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"{job.label} {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True,
                position=job.runtime.progress_position)


def _training_batches(model, data, recipe, ctx: JobContext):
    """(network, loader, transform) of the training loop. A frozen tower under the deterministic transform
    (augmentation "none") sees the same features every epoch: they are computed once (and cached), and the
    epochs train the head on them, in the same shuffled order as the images would come. Images come as uint8
    crops; `transform.normalise` makes them the model's input on the device."""
    if frozen_tower(model) and recipe.augmentation == "none":
        cached = features(model, data, "train", "train", ctx)
        generator = torch.Generator()
        generator.manual_seed(ctx.job.seed)
        loader = DataLoader(TensorDataset(cached["features"][:, 0], cached["labels"]), batch_size=recipe.batch_size,
                            shuffle=True, generator=generator)
        return model.head, loader, None
    mean, std = input_mean_std(model.visual)
    transform = train_transform(recipe.augmentation, input_size(model.visual), recipe.epochs, mean, std,
                                recipe.mda_func, uint8=True, resize=resize_mode(ctx.job.runtime),
                                interpolation=recipe.interpolation)
    loader = make_loader(data.train, transform, recipe.batch_size, shuffle=True, seed=ctx.job.seed,
                         workers=ctx.workers, pin_memory=ctx.device.type == "cuda")
    return model, loader, transform


def _timed(batches):
    """(seconds blocked in next(batches), batch) for each batch: the time the step waited for the loader."""
    while True:
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield time.perf_counter() - start, batch


def fit(model, data, recipe, ctx: JobContext, checkpoint: EpochCheckpoint | None = None,
        trackers: JobTrackers | None = None) -> list[dict]:
    """SGD + momentum with a cosine schedule stepped per epoch; exact gradient accumulation over micro-batches.

    Each epoch's record has `data_wait_s`, the seconds the loop was blocked on the loader (starting its workers
    and every next()), and `data_wait_share`, their part of the epoch's seconds (0 to 1). `trackers` get each
    step's loss, lr and images/s at global step epoch × steps + step, and each epoch's record at its last step."""
    job, device, precision = ctx.job, ctx.device, ctx.precision
    optimiser = make_optimiser([p for _, p in model.trainable_parameters()], recipe, device)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)
    criterion = make_loss(recipe, data.train_class_counts).to(device)
    network, loader, transform = _training_batches(model, data, recipe, ctx)
    normalise = getattr(transform, "normalise", None)
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
        opened = time.perf_counter()
        batches = iter(loader)  # starts the workers: waiting for data too
        data_wait = time.perf_counter() - opened
        step_start = time.perf_counter()
        for step, (waited, (images, labels)) in enumerate(_timed(batches)):
            data_wait += waited
            images, labels = to_device(images, device, normalise), labels.to(device, non_blocking=True)
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
            if trackers is not None:
                now = time.perf_counter()
                trackers.log_step(epoch * len(loader) + step, value, lr, len(labels) / (now - step_start))
                step_start = now
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{value:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        schedule.step()
        record = {"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "train_batch_acc": 100.0 * correct / seen,
                  "seconds": seconds, "images_per_s": seen / seconds, "data_wait_s": data_wait,
                  "data_wait_share": min(1.0, data_wait / seconds) if seconds > 0 else 0.0}
        history.append(record)
        if trackers is not None:
            trackers.log_epoch((epoch + 1) * len(loader) - 1, record)
        log.info("%s epoch %d/%d loss %.4f acc %.1f lr %.3g %.0f img/s", job.label, epoch + 1, recipe.epochs,
                 record["loss"], record["train_batch_acc"], lr, record["images_per_s"])
        if checkpoint and epoch + 1 < recipe.epochs:
            checkpoint.save(epoch + 1, model, optimiser, schedule, scaler, history)
    return history
