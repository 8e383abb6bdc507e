"""Per-regime cost on this device: training and evaluation speed, peak memory, FLOPs and MFU (`run`).

Each regime is built on synthetic batches and random weights and measured twice in one process, as a plain
baseline (fp32, eager, per-tensor optimiser loop) and as ltbench runs it; the training step is the engine's
own (`train_step`). `run` also times the cached linear-probe epoch and, first, the loader (`bench.perf.loader`).
"""
from __future__ import annotations

import copy
import dataclasses
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
import open_clip
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.data.base import ArrayImages, LongTailData
from bench.data.cifar import cifar_lt_counts
from bench.models import create_clip
from bench.models.backbone import backbone_of, feature_dim, input_size
from bench.models.towers import has_text_tower
from bench.perf.loader import LoaderConfig, against_training, measure_loader
from bench.registry import REGIMES, get_regime
from bench.training.losses import make_loss
from bench.training.optim import make_optimiser, optimiser_step, train_step
from bench.training.precision import autocast_factory, resolve_device, resolve_precision

TTE_CROPS = 5


@dataclass(frozen=True)
class Setting:
    """How a regime is run: the plain baseline, or ltbench's optimised path."""

    name: str
    precision: str  # fp32, bf16, fp16 or auto
    kernel: str  # optimiser kernel, see make_optimiser
    compile: bool = False


@dataclass(frozen=True)
class PerfConfig:
    model: str = "ViT-B-16"
    regimes: tuple[str, ...] = tuple(REGIMES.names())
    num_classes: int = 1000
    batch_size: int = 128
    eval_batch_size: int = 256
    steps: int = 10
    warmup: int = 3
    device: str = "auto"
    compile: bool = False
    probe_images: int = 10_847  # CIFAR-100-LT's training set
    loader: LoaderConfig | None = LoaderConfig()  # None: skip the loader measurement

    @property
    def settings(self) -> list[Setting]:
        return [Setting("baseline", "fp32", "loop"), Setting("ltbench", "auto", "auto", self.compile)]


def _synthetic_data(num_classes: int) -> LongTailData:
    """Label space and a long-tail count profile only; the images are synthetic tensors made per batch."""
    labels = np.repeat(np.arange(num_classes), cifar_lt_counts(100, num_classes, 100.0))
    tiny = np.zeros((len(labels), 2, 2, 3), dtype=np.uint8)
    split = ArrayImages(tiny, labels, "perf")
    return LongTailData("perf", [f"class {i}" for i in range(num_classes)], split, split)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_flops(device: torch.device, precision: str, size: int | None = None) -> float:
    """Dense matrix-product FLOP/s measured on `device` in `precision` (the MFU denominator)."""
    size = size or (8192 if device.type == "cuda" else 1024)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = _median_seconds(lambda: a @ b, device, steps=5, warmup=2)
    return 2 * size ** 3 / seconds


def _build(config: PerfConfig, regime_name: str, data: LongTailData, clip, device):
    """The regime's model on a copy of the weights (regimes inject modules into the towers they are given), with
    random class-prompt embeddings, or a random head init on a backbone without a text tower (the image inits
    only change values, not cost). ValueError when the regime does not run on this backbone."""
    regime = get_regime(regime_name)
    recipe = dataclasses.replace(regime.recipe, epochs=1)
    clip = copy.deepcopy(clip)
    text = None
    if has_text_tower(clip.visual):
        text = torch.randn(data.num_classes, clip.text_projection.shape[1])
    elif recipe.classifier_init == "semantic":
        recipe = dataclasses.replace(recipe, classifier_init="random")
    backbone = backbone_of(clip, config.model, data.classnames, text, regime.uses_text_tower(recipe))
    regime.check(recipe, backbone)
    torch.manual_seed(0)
    return regime, recipe, regime.build(backbone, data, recipe).to(device)


def measure_regime(config: PerfConfig, regime_name: str, setting: Setting, data: LongTailData, clip,
                   device: torch.device, peaks: dict[str, float]) -> dict:
    """One row of the table: the regime under one setting (only `skipped`, the reason, when the regime does
    not run on this backbone)."""
    try:
        regime, recipe, model = _build(config, regime_name, data, clip, device)
    except ValueError as exc:
        return {"regime": regime_name, "setting": setting.name, "skipped": str(exc)}
    precision = resolve_precision(setting.precision, device)
    autocast = autocast_factory(device, precision)
    size = input_size(model.visual)
    images = torch.randn(config.batch_size, 3, size, size, device=device)
    labels = torch.randint(0, data.num_classes, (config.batch_size,), device=device)
    eval_images = torch.randn(config.eval_batch_size, 3, size, size, device=device)
    forward = torch.compile(model) if setting.compile else model
    row = {"regime": regime_name, "setting": setting.name, "precision": precision, "kernel": setting.kernel,
           "compile": setting.compile}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainable = [p for _, p in model.trainable_parameters()]
    if regime.trains and trainable:
        optimiser = make_optimiser(trainable, recipe, device, setting.kernel)
        criterion = make_loss(recipe, data.train_class_counts).to(device)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        model.train()

        def step():
            train_step(forward, optimiser, criterion, images, labels, config.batch_size, autocast, scaler)
            optimiser_step(optimiser, scaler)

        seconds = _median_seconds(step, device, config.steps, config.warmup)
        with FlopCounterMode(display=False) as counter:
            train_step(model, optimiser, criterion, images, labels, config.batch_size, autocast, scaler)
        flops = counter.get_total_flops() / config.batch_size
        row.update({"train_img_s": config.batch_size / seconds, "step_ms": 1000 * seconds,
                    "train_gflop_per_img": flops / 1e9,
                    "mfu_pct": 100 * flops * config.batch_size / seconds / peaks[precision]})
    model.eval()

    @torch.no_grad()
    def evaluate(batch):
        with autocast():
            return forward(batch)

    for name, crops in (("eval_img_s", 1), ("eval_tte_img_s", TTE_CROPS)):
        batch = eval_images.repeat(crops, 1, 1, 1) if crops > 1 else eval_images
        row[name] = config.eval_batch_size / _median_seconds(lambda: evaluate(batch), device,
                                                             max(2, config.steps // 2), 1)
    row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return row


def cached_probe_epoch(config: PerfConfig, data: LongTailData, clip, device: torch.device,
                       forward_img_s: float) -> dict:
    """A linear-probe epoch after the first (the head on cached features, `config.probe_images` of them)
    against the backbone forward over the same images that it replaces."""
    regime, recipe, model = _build(config, "linear_probe", data, clip, device)
    precision = resolve_precision("auto", device)
    n, dim = config.probe_images, feature_dim(model.visual)
    features = torch.randn(n, dim, device=device)
    labels = torch.randint(0, data.num_classes, (n,), device=device)
    optimiser = make_optimiser([p for _, p in model.trainable_parameters()], recipe, device)
    criterion = make_loss(recipe, data.train_class_counts).to(device)
    autocast = autocast_factory(device, precision)

    def epoch():
        for x, y in zip(features.split(recipe.batch_size), labels.split(recipe.batch_size)):
            train_step(model.head, optimiser, criterion, x, y, len(y), autocast, None)
            optimiser_step(optimiser, None)

    seconds = _median_seconds(epoch, device, steps=3, warmup=1)
    forward_s = n / forward_img_s
    return {"images": n, "epoch_s": seconds, "backbone_forward_s": forward_s, "speedup": forward_s / seconds}


def run(config: PerfConfig) -> dict:
    device = resolve_device(config.device)
    for name in config.regimes:
        REGIMES.get(name)
    torch.manual_seed(0)
    clip = create_clip(config.model, "none")
    # first, so that a bad --loader-split stops the run before the regimes are measured
    loader = measure_loader(config.loader, input_size(clip.visual), device.type == "cuda") if config.loader else None
    data = _synthetic_data(config.num_classes)
    precisions = {resolve_precision(s.precision, device) for s in config.settings}
    peaks = {p: matmul_peak_flops(device, p) for p in precisions}
    rows = []
    for name in config.regimes:
        baseline = None
        for setting in config.settings:
            row = measure_regime(config, name, setting, data, clip, device, peaks)
            baseline = baseline or row
            for key in ("train_img_s", "eval_img_s", "eval_tte_img_s"):
                if row.get(key) and baseline.get(key):
                    row[f"{key.removesuffix('_img_s')}_speedup"] = row[key] / baseline[key]
            rows.append(row)
    probe = [r for r in rows if r["regime"] == "linear_probe" and r["setting"] == "ltbench"]
    cached = cached_probe_epoch(config, data, clip, device, probe[0]["eval_img_s"]) if probe else None
    if loader is not None:
        training = {r["regime"]: r["train_img_s"] for r in rows if r["setting"] == "ltbench" and r.get("train_img_s")}
        loader = against_training(loader, training)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"config": dataclasses.asdict(config), "device": f"{device} ({name})",
            "peak_matmul_tflops": {p: v / 1e12 for p, v in peaks.items()},
            "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__,
                         "python": platform.python_version()},
            "rows": rows, "linear_probe_cached_epoch": cached, "loader": loader}
