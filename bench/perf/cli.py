"""`python -m bench.perf` (or `run_bench.py perf`): what each regime costs on this device.

Per regime, on synthetic batches and random weights (no download): training images/s and step time, peak
GPU memory, evaluation images/s with and without 5-crop test-time ensembling, FLOPs per image (counted by
torch's FlopCounterMode on the real forward and backward) and model FLOP utilisation against the dense
matrix-product rate measured on the same device in the same precision. Every regime is measured twice in
one process, as a plain baseline (fp32, eager, per-tensor optimiser loop) and as ltbench runs it, so each
speed-up is a ratio taken side by side. The training step is the engine's own (`train_step`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.data.base import DataError
from bench.fields import MAX_BATCH, MAX_PROCESSES, MAX_SIZE, number
from bench.io import atomic_file
from bench.models import WeightsUnavailableError
from bench.perf.loader import LoaderConfig, format_loader
from bench.perf.regimes import PerfConfig, run
from bench.registry import REGIMES
from bench.text_table import format_cell, format_table as text_table
from bench.training.precision import resolve_device

COLUMNS = [("regime", "regime", "{}"), ("setting", "setting", "{}"), ("precision", "prec", "{}"),
           ("train_img_s", "train img/s", "{:.1f}"), ("step_ms", "step ms", "{:.1f}"),
           ("train_speedup", "train ×", "{:.2f}"), ("peak_mem_mb", "peak MB", "{:.0f}"),
           ("eval_img_s", "eval img/s", "{:.1f}"), ("eval_tte_img_s", "eval TTE img/s", "{:.1f}"),
           ("train_gflop_per_img", "GFLOP/img", "{:.2f}"), ("mfu_pct", "MFU %", "{:.1f}")]
EMPTY = "-"  # a figure the row does not have (nothing trains, or no GPU memory to count)
MAX_STEPS = 10_000  # timed steps per regime and setting: far beyond a stable median


def format_table(report: dict) -> str:
    """The report as printed: device and matrix-product peak, the table of rows, the cached linear-probe
    epoch and the loader figures."""
    lines = [text_table([title for _, title, _ in COLUMNS],
                        [[format_cell(row.get(key), fmt, EMPTY) for key, _, fmt in COLUMNS] for row in report["rows"]])]
    peaks = ", ".join(f"{p} {v:.2f} TFLOP/s" for p, v in report["peak_matmul_tflops"].items())
    cached = report.get("linear_probe_cached_epoch")
    if cached:
        lines.append(f"linear probe, an epoch after the first on {cached['images']:,} cached features: "
                     f"{cached['epoch_s']:.3f} s against {cached['backbone_forward_s']:.2f} s of backbone forward "
                     f"({cached['speedup']:.0f}× faster)")
    lines += [f"{row['regime']}: not measured, {row['skipped']}" for row in report["rows"]
              if row.get("skipped") and row["setting"] == "baseline"]
    if report.get("loader"):
        lines.append(format_loader(report["loader"]))
    return f"device: {report['device']}; measured matrix-product peak: {peaks}\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="open_clip or ImageNet (in21k_vit_b16, in1k_rn50, ...) model (default: "
                                                    "ViT-B-16 on GPU, ltbench-tiny on CPU)")
    p.add_argument("--regimes", nargs="+", default=list(REGIMES.names()))
    p.add_argument("--num-classes", type=number(int, 2, MAX_SIZE), default=1000)
    p.add_argument("--batch-size", type=number(int, 1, MAX_BATCH), default=128)
    p.add_argument("--eval-batch-size", type=number(int, 1, MAX_BATCH), default=256)
    p.add_argument("--steps", type=number(int, 1, MAX_STEPS), default=10,
                   help="measured steps per regime and setting (median)")
    p.add_argument("--warmup", type=number(int, 0, MAX_STEPS), default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="also torch.compile the ltbench setting")
    p.add_argument("--probe-images", type=number(int, 1, MAX_BATCH), default=10_847,
                   help="images of the cached linear-probe epoch")
    p.add_argument("--loader-images", type=number(int, 0, MAX_SIZE), default=512,
                   help="synthetic iNaturalist-size JPEGs for the loader measurement (0 skips it)")
    p.add_argument("--loader-split", type=Path, help="measure the loader on this real split file instead")
    p.add_argument("--loader-root", type=Path, help="image root of --loader-split (default: its folder)")
    p.add_argument("--loader-workers", type=number(int, 0, MAX_PROCESSES),
                   help="most DataLoader workers to try (default: usable cores)")
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    if args.loader_split is None and 0 < args.loader_images <= args.batch_size:  # one batch: nothing timed
        p.error(f"--loader-images {args.loader_images}: the loader measurement times the batches after the first, "
                f"so it needs more than --batch-size {args.batch_size} images; give more, or 0 to skip it")
    device = resolve_device(args.device)
    model = args.model or ("ViT-B-16" if device.type == "cuda" else "ltbench-tiny")
    loader = None if args.loader_images <= 0 and args.loader_split is None else LoaderConfig(
        args.loader_images, args.batch_size, args.loader_split, args.loader_root, args.loader_workers)
    config = PerfConfig(model, tuple(args.regimes), args.num_classes, args.batch_size, args.eval_batch_size,
                        args.steps, args.warmup, args.device, args.compile, args.probe_images, loader)
    try:
        report = run(config)
    except (DataError, WeightsUnavailableError, ValueError) as exc:  # unknown names, bad loader folder
        print(f"ltbench perf: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.json:
        with atomic_file(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
