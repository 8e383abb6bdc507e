"""Loader throughput: can the DataLoader feed the GPU from iNaturalist-size JPEG folders?

Reads JPEGs through the project's own path (split file → `FileImages` → LIFT+'s minimalist training crop →
seeded DataLoader handing uint8 crops, normalised on the device) and reports images/s for each number of
worker processes, to set against the training images/s of the regimes. By default it writes synthetic 800×600
JPEGs (iNaturalist 2018's size) listed in an iNaturalist-style split file; `--loader-split/--loader-root`
measure a real folder (and its storage).

`stage_costs` splits one core's work per image into its stages (decode, crop+resize, to-tensor, normalise,
collate, and what a worker process adds: the IPC) for today's pipeline, `float` (ToTensor + Normalize in the
workers, as the references), and `uint8` (uint8 crops through the workers, normalised on the device), side by
side in one process: `python -m bench.perf.loader --images 256` prints them; and `device`
(`Runtime.resize_on_device`: the workers only decode and crop, the resize runs on the device, bit for bit
Pillow's), whose device-side resize is timed separately on this CPU (its twin).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torch.utils.data import default_collate
from torchvision.transforms import functional as TF

from bench.data.base import FileImages
from bench.data.loading import make_loader
from bench.data.split_files import parse_split_file
from bench.data.transforms import collate_packed, train_transform

INAT_IMAGE_SIZE = (800, 600)  # width × height of most iNaturalist 2018 images
MEASURED_EPOCHS = 5  # the minimalist crop's schedule is set for a 5-epoch run, measured at its first epoch
PIPELINES = ("float", "uint8", "device")  # the references' ToTensor + Normalize in the workers; uint8 crops,
# device normalise; decode + crop in the workers, resize + normalise on the device (resize="device")
STAGES = ("decode", "crop_resize", "to_tensor", "normalise", "collate", "ipc")


@dataclass(frozen=True)
class LoaderConfig:
    images: int = 512  # synthetic JPEGs to write (ignored with `split`)
    batch_size: int = 128
    split: Path | None = None  # a real `<relative path> <label>` split file
    root: Path | None = None  # its image root
    max_workers: int | None = None  # default: the CPU cores this process may use
    stage_repeats: int = 3  # passes of the per-stage measurement (best of them); 0 skips it


def write_jpeg_folder(root: Path, images: int, seed: int = 0, size: tuple[int, int] = INAT_IMAGE_SIZE) -> Path:
    """`images` JPEGs of smooth random colour fields with grain (quality 90, like camera photos) and the split
    file listing them; returns the split file."""
    rng = np.random.default_rng(seed)
    width, height = size
    lines = []
    for i in range(images):
        coarse = rng.integers(0, 256, (height // 50, width // 50, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(field + rng.integers(-12, 13, field.shape), 0, 255).astype(np.uint8)
        rel = f"train_val2018/Plantae/{i % 10}/{i:06d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / rel, quality=90)
        lines.append(f"{rel} {i % 10}")
    split = root / "iNaturalist18_train.txt"
    split.write_text("\n".join(lines) + "\n")
    return split


def worker_counts(limit: int) -> list[int]:
    """0 (in-process), then powers of two up to `limit`, and `limit` itself."""
    counts, w = [0], 1
    while w < limit:
        counts.append(w)
        w *= 2
    return counts + [limit] if limit > 0 else counts


def _transform(size: int, pipeline: str):
    return train_transform("minimalist", size, MEASURED_EPOCHS, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD,
                           uint8=pipeline != "float", resize="device" if pipeline == "device" else "worker")


def _one_pass(source: FileImages, size: int, batch_size: int, workers: int, pin_memory: bool,
              pipeline: str) -> float:
    transform = _transform(size, pipeline)
    loader = make_loader(source, transform, batch_size, shuffle=True, seed=0, workers=workers, pin_memory=pin_memory)
    batches = iter(loader)
    next(batches)
    start, images = time.perf_counter(), 0
    for x, _ in batches:
        images += len(x)
    if images == 0:
        raise ValueError(f"the loader benchmark needs more than one batch: give more than {batch_size} images")
    return images / (time.perf_counter() - start)


def loader_img_s(source: FileImages, size: int, batch_size: int, workers: int, pin_memory: bool,
                 pipeline: str = "uint8") -> float:
    """Images/s over one pass after the first batch (which pays for starting the workers); `pipeline` "uint8"
    is the project's (uint8 crops, normalised on the device), "float" the references' (ToTensor + Normalize
    in the workers)."""
    return _one_pass(source, size, batch_size, workers, pin_memory, pipeline)


def _best_ms(fn, items, repeats: int) -> float:
    """Milliseconds per item of fn over `items`, the best of `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return 1e3 * best


def stage_costs(source: FileImages, size: int, batch_size: int, repeats: int = 3) -> dict:
    """Per image, on one core (torch at 1 thread, as in a DataLoader worker), best of `repeats` passes, both
    pipelines in this process: ms of each stage, and images/s of the whole path in-process (0 workers: one core
    does everything) and through 1 worker process (one decoding core; adds the IPC).

    decode: FileImages.load (open, decode, RGB). crop_resize: the minimalist crop (epoch 0) with its bicubic
    resize, seeded per image. to_tensor: ToTensor (float) or pil_to_tensor (uint8). normalise: Normalize per
    image in the worker (float), none there (uint8; `device_normalise_ms` is its cost per image on this CPU, a
    stand-in for the device). collate: default_collate of the batches. ipc: 1 worker's ms/img less the in-process
    ms/img (shared-memory batches through the worker queue, and the worker's own overhead).

    device (resize="device"): crop_resize is the crop alone (the box's uint8 pixels, no resize), to_tensor is in
    it, collate packs the variable-size crops; `device_resize_ms` is the device side (Pillow's resize as float64
    matmuls, then the normalisation) per image on this CPU at 1 thread: its twin, not a GPU's cost."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        indices = list(range(len(source)))
        decoded = [source.load(i) for i in indices]
        float_t, uint8_t, device_t = (_transform(size, p) for p in PIPELINES)
        crop = uint8_t.transforms[0]  # the same MinimalistCrop in both
        region = device_t.transforms[0]  # its box's pixels only (CropRegion), the same draws

        def crop_one(i):
            torch.manual_seed(i)
            return crop(decoded[i])

        def region_one(i):
            torch.manual_seed(i)
            return region(decoded[i])

        crops = [crop_one(i) for i in indices]
        to_float, normalise = float_t.transforms[-2], float_t.transforms[-1]
        floats = [to_float(c) for c in crops]
        starts = range(0, len(crops), batch_size)
        regions = [region_one(i) for i in indices]
        batches = {"float": [[normalise(f) for f in floats[i:i + batch_size]] for i in starts],
                   "uint8": [[TF.pil_to_tensor(c) for c in crops[i:i + batch_size]] for i in starts],
                   "device": [regions[i:i + batch_size] for i in starts]}
        device_normalise = uint8_t.normalise
        collated = [default_collate([(x, 0) for x in b])[0] for b in batches["uint8"]]
        stages = {p: {} for p in PIPELINES}
        in_process, one_worker = {p: 0.0 for p in PIPELINES}, {p: 0.0 for p in PIPELINES}
        packed = [collate_packed([(x, 0) for x in b])[0] for b in batches["device"]]
        shared = {"decode": _best_ms(source.load, indices, repeats),
                  "crop_resize": _best_ms(crop_one, indices, repeats)}
        region_ms = _best_ms(region_one, indices, repeats)
        for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits both
            for p in PIPELINES:
                in_process[p] = max(in_process[p], _one_pass(source, size, batch_size, 0, False, p))
                one_worker[p] = max(one_worker[p], _one_pass(source, size, batch_size, 1, False, p))
        for p in PIPELINES:
            stages[p].update(shared)
            if p == "device":
                stages[p]["crop_resize"] = region_ms
                stages[p]["to_tensor"] = 0.0  # in the crop: pil_to_tensor of the box
            else:
                stages[p]["to_tensor"] = _best_ms(to_float if p == "float" else TF.pil_to_tensor, crops, repeats)
            stages[p]["normalise"] = _best_ms(normalise, floats, repeats) if p == "float" else 0.0
            collate = collate_packed if p == "device" else default_collate
            stages[p]["collate"] = _best_ms(lambda b: collate([(x, 0) for x in b]), batches[p],
                                            repeats) * len(batches[p]) / len(crops)
            stages[p]["ipc"] = 1e3 / one_worker[p] - 1e3 / in_process[p]
        device_ms = _best_ms(device_normalise, collated, repeats) * len(collated) / len(crops)
        device_resize_ms = _best_ms(device_t.normalise, packed, repeats) * len(packed) / len(crops)
    finally:
        torch.set_num_threads(threads)
    return {"stages_ms": stages, "img_s_per_core": in_process, "img_s_one_worker": one_worker,
            "device_normalise_ms": device_ms, "device_resize_ms": device_resize_ms,
            "bytes_per_crop": {"float": 4 * 3 * size * size, "uint8": 3 * size * size,
                               "device": sum(r.numel() for r in regions) // len(regions)},
            "speedup_per_core": in_process["uint8"] / in_process["float"],
            "speedup_one_worker": one_worker["uint8"] / one_worker["float"],
            "device_speedup_per_core": in_process["device"] / in_process["float"],
            "device_speedup_one_worker": one_worker["device"] / one_worker["float"]}


def measure_loader(config: LoaderConfig, size: int, pin_memory: bool) -> dict:
    """Loader images/s per worker count (DataError names a missing or unreadable split file or image)."""
    limit = config.max_workers if config.max_workers is not None else len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="ltbench-loader-") as tmp:
        if config.split is not None:
            split, root, what = Path(config.split), Path(config.root or Path(config.split).parent), str(config.split)
        else:
            split, root = write_jpeg_folder(Path(tmp), config.images), Path(tmp)
            what = f"{config.images} synthetic {INAT_IMAGE_SIZE[0]}×{INAT_IMAGE_SIZE[1]} JPEGs"
        rel_paths, labels, line_numbers = parse_split_file(split)
        source = FileImages(root, rel_paths, labels, split, line_numbers)
        rates = {w: loader_img_s(source, size, config.batch_size, w, pin_memory) for w in worker_counts(limit)}
        stages = stage_costs(source, size, config.batch_size, config.stage_repeats) if config.stage_repeats else None
    return {"source": what, "images": len(source), "crop": size, "img_s_by_workers": rates, "stages": stages}


def against_training(loader: dict, training_img_s: dict[str, float]) -> dict:
    """The loader figures with, per regime, its training images/s and the fewest workers that keep up with it."""
    rates = loader["img_s_by_workers"]
    needed = {regime: next((w for w, rate in rates.items() if rate >= train), None)
              for regime, train in training_img_s.items()}
    return {**loader, "training_img_s": training_img_s, "workers_needed": needed}


def format_stages(stages: dict) -> list[str]:
    """The per-stage table (ms/img on one core) of `stage_costs`: float, uint8 and decode+crop (resize on the
    device), the images/s per core and their ratio to float (today's references)."""
    ms = stages["stages_ms"]
    device = "device" in ms  # a report from before the third pipeline has two columns
    lines = ["  stage, ms/img on one core    float (today)   uint8 (device normalise)"
             + ("   decode+crop (resize on device)" if device else "")]

    def row(title, values):
        return f"    {title:<26} {values[0]:>10.2f} {values[1]:>14.2f}" + (f" {values[2]:>16.2f}" if device else "")

    for stage in STAGES:
        lines.append(row(stage, [ms[p][stage] for p in PIPELINES if p in ms]))
    lines.append(row("sum of the stages", [sum(ms[p].values()) for p in PIPELINES if p in ms]))
    lines.append(f"    {'on the device, per image':<26} {0.0:>10.2f} {stages['device_normalise_ms']:>14.2f}"
                 + (f" {stages['device_resize_ms']:>16.2f}" if device else "")
                 + "  (normalise; resize+normalise: measured on this CPU at 1 thread, not in the worker figures)")
    for key, title, ratio in (("img_s_per_core", "img/s, in-process (1 core)", "speedup_per_core"),
                              ("img_s_one_worker", "img/s, 1 worker process", "speedup_one_worker")):
        line = (f"    {title:<26} {stages[key]['float']:>10.1f} {stages[key]['uint8']:>14.1f}"
                f"  ({stages[ratio]:.2f}×)")
        if device:
            line += f" {stages[key]['device']:>8.1f}  ({stages['device_' + ratio]:.2f}×)"
        lines.append(line)
    bytes_ = stages["bytes_per_crop"]
    lines.append(f"    {'bytes per crop through IPC':<26} {bytes_['float']:>10,} {bytes_['uint8']:>14,}"
                 + (f" {bytes_['device']:>16,}" if device else ""))
    return lines


def format_loader(report: dict) -> str:
    rates = ", ".join(f"{w} workers {rate:,.0f}" for w, rate in report["img_s_by_workers"].items())
    lines = [f"loader, {report['source']} → {report['crop']} px minimalist crops, img/s: {rates}"]
    if report.get("stages"):
        lines += format_stages(report["stages"])
    best = max(report["img_s_by_workers"].values())
    for regime, needed in report.get("workers_needed", {}).items():
        train = report["training_img_s"][regime]
        verdict = (f"{needed} workers keep up" if needed is not None
                   else f"no worker count here keeps up (best {best:,.0f} = {100 * best / train:.0f}%)")
        lines.append(f"  {regime} trains at {train:,.0f} img/s: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.perf.loader`: the loader figures alone (no regimes), with the per-stage table."""
    p = argparse.ArgumentParser(prog="python -m bench.perf.loader", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256, help="synthetic 800×600 JPEGs")
    p.add_argument("--split", type=Path, help="a real split file instead")
    p.add_argument("--root", type=Path, help="its image root")
    p.add_argument("--size", type=int, default=224, help="crop side (ViT-B/16: 224)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, help="most DataLoader workers to try")
    p.add_argument("--repeats", type=int, default=3, help="passes of the per-stage measurement (best of them)")
    args = p.parse_args(argv)
    config = LoaderConfig(args.images, args.batch_size, args.split, args.root, args.workers, args.repeats)
    print(format_loader(measure_loader(config, args.size, pin_memory=False)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
