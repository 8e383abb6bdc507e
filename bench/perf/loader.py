"""Loader throughput: can the DataLoader feed the GPU from iNaturalist-size JPEG folders?

Reads JPEGs through the project's own path (split file → `FileImages` → LIFT+'s minimalist training crop →
seeded DataLoader) and reports images/s for each number of worker processes, to set against the training
images/s of the regimes. By default it writes synthetic 800×600 JPEGs (iNaturalist 2018's size) listed in
an iNaturalist-style split file; `--loader-split/--loader-root` measure a real folder (and its storage).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from bench.data.base import FileImages
from bench.data.loading import make_loader
from bench.data.split_files import parse_split_file
from bench.data.transforms import train_transform

INAT_IMAGE_SIZE = (800, 600)  # width × height of most iNaturalist 2018 images
MEASURED_EPOCHS = 5  # the minimalist crop's schedule is set for a 5-epoch run, measured at its first epoch


@dataclass(frozen=True)
class LoaderConfig:
    images: int = 512  # synthetic JPEGs to write (ignored with `split`)
    batch_size: int = 128
    split: Path | None = None  # a real `<relative path> <label>` split file
    root: Path | None = None  # its image root
    max_workers: int | None = None  # default: the CPU cores this process may use


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


def loader_img_s(source: FileImages, size: int, batch_size: int, workers: int, pin_memory: bool) -> float:
    """Images/s over one pass after the first batch (which pays for starting the workers)."""
    transform = train_transform("minimalist", size, MEASURED_EPOCHS, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    loader = make_loader(source, transform, batch_size, shuffle=True, seed=0, workers=workers, pin_memory=pin_memory)
    batches = iter(loader)
    next(batches)
    start, images = time.perf_counter(), 0
    for x, _ in batches:
        images += len(x)
    if images == 0:
        raise ValueError(f"the loader benchmark needs more than one batch: give more than {batch_size} images")
    return images / (time.perf_counter() - start)


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
    return {"source": what, "images": len(source), "crop": size, "img_s_by_workers": rates}


def against_training(loader: dict, training_img_s: dict[str, float]) -> dict:
    """The loader figures with, per regime, its training images/s and the fewest workers that keep up with it."""
    rates = loader["img_s_by_workers"]
    needed = {regime: next((w for w, rate in rates.items() if rate >= train), None)
              for regime, train in training_img_s.items()}
    return {**loader, "training_img_s": training_img_s, "workers_needed": needed}


def format_loader(report: dict) -> str:
    rates = ", ".join(f"{w} workers {rate:,.0f}" for w, rate in report["img_s_by_workers"].items())
    lines = [f"loader, {report['source']} → {report['crop']} px minimalist crops, img/s: {rates}"]
    best = max(report["img_s_by_workers"].values())
    for regime, needed in report["workers_needed"].items():
        train = report["training_img_s"][regime]
        verdict = (f"{needed} workers keep up" if needed is not None
                   else f"no worker count here keeps up (best {best:,.0f} = {100 * best / train:.0f}%)")
        lines.append(f"  {regime} trains at {train:,.0f} img/s: {verdict}")
    return "\n".join(lines)
