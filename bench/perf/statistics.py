"""`python -m bench.perf.statistics`: time and peak memory of the feature statistics at the real dataset sizes.

Per size, random float32 features of the real train and test counts and class numbers, long-tail train labels
(from the largest to the smallest class count of the real split, fitted to its total) and equal test counts per
class, with pretrained reference features of the same shape (other numbers: a tower that trains, so that the
CKA is computed), as the engine passes them, and the split's many/medium/few groups. Each size runs in a fresh
process, so that its peak RSS (a high-water mark) is its own: the figure is the growth of that mark over the
call to `summarised_statistics` (every statistic of bench.statistics), taken after the inputs are allocated.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.groups import ClassGroups
from bench.io import atomic_file
from bench.statistics import summarised_statistics
from bench.text_table import format_table


@dataclass(frozen=True)
class Size:
    train: int
    test: int
    classes: int
    most: int  # train images of the largest class
    fewest: int  # and of the smallest


SIZES = {"places_lt": Size(62_500, 36_500, 365, 4_980, 5),
         "imagenet_lt": Size(115_846, 50_000, 1_000, 1_280, 5),
         "inat2018": Size(437_513, 24_426, 8_142, 1_000, 2)}
COLUMNS = ("size", "train", "test", "classes", "seconds", "peak extra MB")


def long_tail_counts(size: Size) -> np.ndarray:
    """Class counts from `most` down to `fewest` along fewest + (most − fewest)(1 − x)^p, x from 0 to 1, with
    the power p bisected so that they sum to the train total (rounding is settled on the largest classes)."""
    x = np.linspace(0.0, 1.0, size.classes)
    lo, hi = 0.0, 1e3
    for _ in range(100):
        p = (lo + hi) / 2
        lo, hi = (p, hi) if (size.fewest + (size.most - size.fewest) * (1 - x) ** p).sum() > size.train else (lo, p)
    counts = np.rint(size.fewest + (size.most - size.fewest) * (1 - x) ** p).astype(np.int64)
    counts[:abs(size.train - counts.sum())] += np.sign(size.train - counts.sum())
    return counts


def inputs(size: Size, dim: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """Features, labels and frozen features of both splits, filled in place: no temporary copy raises the RSS
    high-water mark above what the inputs hold."""
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    train = rng.permutation(np.repeat(np.arange(size.classes), long_tail_counts(size)))
    labels = {"train": torch.from_numpy(train), "test": torch.arange(size.test) % size.classes}
    features, frozen = ({split: torch.empty(len(y), dim).normal_(generator=g) for split, y in labels.items()}
                        for _ in range(2))
    return features, labels, frozen


def measure(name: str, dim: int = 768) -> dict:
    """Wall time and peak RSS growth (MB) of one `summarised_statistics` call at size `name`, in this process."""
    size = SIZES[name]
    features, labels, frozen = inputs(size, dim)
    groups = ClassGroups.from_counts(np.bincount(labels["train"].numpy(), minlength=size.classes)).as_dict()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    start = time.perf_counter()
    summarised_statistics(features, labels, size.classes, frozen, groups)
    seconds = time.perf_counter() - start
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"size": name, "train": size.train, "test": size.test, "classes": size.classes, "dim": dim,
            "seconds": seconds, "peak_extra_mb": extra}


def format_rows(rows: list[dict]) -> str:
    return format_table(COLUMNS, [[r["size"], f"{r['train']:,}", f"{r['test']:,}", f"{r['classes']:,}",
                                   f"{r['seconds']:.2f}", f"{r['peak_extra_mb']:.0f}"] for r in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf.statistics", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    p.add_argument("--dim", type=int, default=768, help="feature dimension (768: ViT-B/16's image features)")
    p.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = p.parse_args(argv)
    rows = []
    for name in args.sizes:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
            rows.append(child.submit(measure, name, args.dim).result())
    print(format_rows(rows))
    if args.json:
        with atomic_file(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
