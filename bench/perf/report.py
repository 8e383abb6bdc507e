"""`python -m bench.perf.report`: what writing the report costs on a run folder of iNaturalist 2018 size.

Writes N synthetic finished jobs (made-up accuracies, real-size per-class arrays and feature statistics, 8,142
classes by default) through the real `bench.results.RunStore` and `bench.job_result.JobResult`, then times
`reports.build.build_report` on that folder in a fresh process: the whole report, each figure (drawn and saved
as PNG), the PDF pages, the PDF's size and the process's peak RSS. `--reuse` measures an existing folder as it
is, so two versions of the report code can be timed on the same files (PYTHONPATH=<other checkout>).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUANTILES = 5  # bench.statistics.QUANTILES
HIST_BINS = 40  # len(bench.statistics.HIST_EDGES) - 1
FEATURES = 768  # ViT-B/16 image features
REGIMES = ["zero_shot", "linear_probe", "full", "lift_plus", "lora", "adapter", "adaptformer", "vpt", "ssf",
           "bitfit", "ln_tuning", "partial", "sparse", "clip_adapter", "coop", "proj_tuning"]
FULL_BACKBONE = 85_800_000  # ViT-B/16's image tower, about


def class_counts(classes: int, rng: np.random.Generator) -> np.ndarray:
    """An iNaturalist-like long tail: 1,000 down to 2 training images per class, most classes few."""
    return rng.permutation(np.round(np.geomspace(1000, 2, classes)).astype(np.int64))


def _statistics(counts: np.ndarray, test_per_class: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The arrays bench.statistics.class_statistics returns, at this many classes (values made up)."""
    k = len(counts)
    out = {}
    for split, count in (("train", counts), ("test", np.full(k, test_per_class))):
        spread = rng.uniform(0.2, 0.6, k)
        out[f"{split}_count"] = count.astype(np.int64)
        out[f"{split}_means"] = rng.standard_normal((k, FEATURES)).astype(np.float32)
        out[f"{split}_mean_spread"] = spread
        out[f"{split}_pairwise_spread"] = spread * 1.1
        out[f"{split}_quantiles"] = np.sort(rng.uniform(0.1, 0.8, (k, QUANTILES)), axis=1)
        out[f"{split}_hist"] = rng.integers(0, 5, (k, HIST_BINS)).astype(np.int32)
        out[f"{split}_drift"] = rng.uniform(0, 0.3, k)
    out["gap_wasserstein"] = rng.uniform(0, 0.2, k)
    out["gap_mean"] = out["test_mean_spread"] - out["train_mean_spread"]
    out["gap_pairwise"] = out["test_pairwise_spread"] - out["train_pairwise_spread"]
    return out


def generate(out: Path, jobs: int, classes: int, seeds: int, dataset: str = "inat2018") -> None:
    """`jobs` regimes × `seeds` seeds of finished jobs on one data set of `classes` classes, in run folder `out`."""
    from bench.data.groups import ClassGroups
    from bench.job_result import JobResult, recipe_id
    from bench.results import RunStore
    from bench.statistics import group_summary

    rng = np.random.default_rng(0)
    store = RunStore(out)
    counts = class_counts(classes, rng)
    groups = ClassGroups.from_counts(counts)
    names = [f"species {c:05d}" for c in range(classes)]
    for r in range(jobs):
        regime = REGIMES[r % len(REGIMES)]  # past 16, a regime's further recipes (another lr)
        for seed in range(seeds):
            config = {"dataset": dataset, "regime": regime, "seed": seed,
                      "recipe": {"epochs": 10, "lr": 0.01 * (1 + r // len(REGIMES))}, "protocol": "reference",
                      "model": "ViT-B-16", "pretrained": "openai"}
            job_id = f"{recipe_id(config)[:12]}{seed:04d}"
            per_class = np.clip(rng.normal(0.3 + 0.02 * r, 0.2, classes) + 0.05 * np.log10(counts), 0, 1)
            accuracy = {"top1": float(100 * per_class.mean()),
                        **{g: float(100 * per_class[getattr(groups, g)].mean()) for g in ("many", "medium", "few")},
                        "per_class_acc": per_class.tolist(), "worst_class_acc": 0.0, "hmean_acc": 1.0,
                        "gmean_acc": 0.0, "macro_f1": float(90 * per_class.mean()),
                        "error_rate": float(100 - 100 * per_class.mean()),
                        "ci95": {"top1": [20.0, 22.0], "few": [10.0, 12.0]}}
            stats = _statistics(counts, 3, rng)
            file = store.save_statistics(job_id, stats)
            summary = group_summary(stats, groups.as_dict())
            backbone = 0 if regime in ("zero_shot", "linear_probe") else (
                FULL_BACKBONE if regime in ("full", "partial") else int(FULL_BACKBONE * 10 ** -rng.uniform(1.5, 3)))
            classifier = 0 if regime == "zero_shot" else classes * 512
            store.save(JobResult(
                job_id=job_id, label=f"{dataset}/{regime}/seed{seed}", config=config,
                dataset={"name": dataset, "num_classes": classes, "classnames": names,
                         "train_class_counts": counts.tolist(), "train_size": int(counts.sum()),
                         "test_size": 3 * classes},
                split_fingerprint="s" * 64, metrics={"test": accuracy, "train": {**accuracy, "top1": 80.0}},
                statistics={"groups": summary, "seconds": 1.0, "file": file},
                params={"trainable": backbone + classifier, "backbone": FULL_BACKBONE,
                        "trainable_pct": 100 * (backbone + classifier) / FULL_BACKBONE,
                        "backbone_trainable": backbone, "classifier": classifier,
                        "backbone_trainable_pct": 100 * backbone / FULL_BACKBONE},
                epochs=config["recipe"]["epochs"],
                history=[{"epoch": e, "loss": 1.0, "data_wait_share": float(rng.uniform(0, 0.6))}
                         for e in range(config["recipe"]["epochs"])],
                timings={"train_s": 3600.0, "total_s": 4000.0, "train_images_per_s": 900.0,
                         "peak_memory_mb": 20000.0}))


def measure(run_dir: Path) -> dict:
    """Time build_report on `run_dir` in this process: total, per figure (draw + PNG) and the PDF pages."""
    import matplotlib.backends.backend_pdf as backend_pdf

    import reports.build as build

    figures: dict[str, float] = {}
    drawn = build._drawn

    def timed_drawn(make, *args):
        start = time.perf_counter()
        try:
            return drawn(make, *args)
        finally:
            key = make.__name__ + "".join(f"({a})" for a in args[1:] if isinstance(a, str))
            figures[key] = figures.get(key, 0.0) + time.perf_counter() - start

    pages: list[float] = []  # seconds per PDF page, cover first
    savefig = backend_pdf.PdfPages.savefig

    def timed_savefig(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return savefig(self, *args, **kwargs)
        finally:
            pages.append(time.perf_counter() - start)

    build._drawn = timed_drawn
    backend_pdf.PdfPages.savefig = timed_savefig
    start = time.perf_counter()
    _, pdf = build.build_report(run_dir)
    total = time.perf_counter() - start
    return {"report_s": total, "pdf_pages_s": sum(pages), "pdf_page_s": pages, "figures_s": figures,
            "pdf_mb": pdf.stat().st_size / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=13, help="regimes (one recipe each; default 13)")
    parser.add_argument("--classes", type=int, default=8142, help="classes (default 8,142: iNaturalist 2018)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per regime (default 1)")
    parser.add_argument("--out", default="runs/perf_report", help="the run folder to write (and report on)")
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--reuse", action="store_true", help="measure the folder as it is, writing no jobs")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.measure_only:
        print(json.dumps(measure(out)))
        return 0
    if not args.reuse:
        if (out / "jobs").exists() and any((out / "jobs").iterdir()):
            parser.error(f"{out} already holds jobs: pass --reuse to measure them, or another --out")
        start = time.perf_counter()
        generate(out, args.jobs, args.classes, args.seeds)
        print(f"wrote {args.jobs * args.seeds} jobs of {args.classes:,} classes in "
              f"{time.perf_counter() - start:.1f} s to {out}", file=sys.stderr)
    # a fresh process (its own peak RSS), importing this file by path so an older checkout can be measured
    # with PYTHONPATH=<that checkout> and a copy of this file
    code = (f"import runpy, sys; sys.argv = ['report', '--measure-only', '--out', {str(out)!r}]; "
            f"sys.exit(runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__'))")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if child.returncode:
        print(child.stderr[-4000:], file=sys.stderr)
        return child.returncode
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(jobs=len(list((out / "jobs").glob("*.json"))), classes=args.classes)
    from bench.text_table import format_cell, format_table

    rows = [["report (total)", format_cell(result["report_s"], "{:.1f}")],
            ["PDF pages (savefig)", format_cell(result["pdf_pages_s"], "{:.1f}")]]
    rows += [[f"  {name}", format_cell(s, "{:.1f}")] for name, s in result["figures_s"].items()]
    print(format_table(["part", "seconds"], rows))
    print(format_table(["jobs", "classes", "report s", "PDF MB", "peak RSS MB"],
                       [[str(result["jobs"]), f"{args.classes:,}", f"{result['report_s']:.1f}",
                         f"{result['pdf_mb']:.2f}", f"{result['peak_rss_mb']:.0f}"]]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
