"""Time `check_images` on N generated JPEGs: `python -m bench.data.bench_checks --files 100000`.

The files are small real JPEGs (a handful of encodings written N times) in 1,000-file folders with a train and a
test split file, as on disk for iNaturalist; the page cache is warm, as right after a copy.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .base import FileImages, LongTailData
from .checks import check_images
from .split_files import parse_split_file

CLASSES = 100
TEST_EVERY = 10  # every 10th file goes to the test split


def _jpegs(count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def make_tree(root: Path, files: int, size: int) -> LongTailData:
    """`files` JPEGs under root/images and their split files under root/splits."""
    encoded = _jpegs(8, size)
    lines = {"train": [], "test": []}
    for i in range(files):
        rel = f"{i // 1000:04d}/{i:07d}.jpg"
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded[i % len(encoded)])
        lines["test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"].append(f"{rel} {i // TEST_EVERY % CLASSES}")
    (root / "splits").mkdir()
    splits = {}
    for name, split_lines in lines.items():
        list_file = root / "splits" / f"{name}.txt"
        list_file.write_text("\n".join(split_lines) + "\n")
        rel_paths, labels, line_numbers = parse_split_file(list_file)
        splits[name] = FileImages(root / "images", rel_paths, labels, list_file, line_numbers)
    return LongTailData("bench_checks", [f"class {c}" for c in range(CLASSES)], splits["train"], splits["test"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        data = make_tree(Path(folder), args.files, args.size)
        print(f"wrote {args.files} {args.size}x{args.size} JPEGs in {time.perf_counter() - start:.1f} s")
        for decode in (False, True):
            start = time.perf_counter()
            check_images(data, decode=decode, threads=args.threads)
            print(f"check_images(decode={decode}, threads={args.threads}): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
