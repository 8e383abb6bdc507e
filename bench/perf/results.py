"""`python -m bench.perf.results`: what a run folder of finished iNaturalist-size jobs costs to resume and to read.

It writes N synthetic finished jobs of iNaturalist 2018's size (8,142 classes, 768-dim features; per-class
accuracies, confusion counts, feature statistics and class means, the data-set summary with every class name)
through the real `RunStore` save path, then measures, each in a fresh process:

- rerun: what the driver does when every job is already done (`bench.cli.run_jobs`, then `finish`'s results.csv
  and summary, without the report): wall time and peak resident memory;
- load: `reports.load.load_run` on the folder (the report's first step): wall time and peak memory;
- disk: bytes per job in each kind of file (job JSON, row, per-class arrays, statistics, shared files).

`--old DIR` repeats everything with the code of another checkout (e.g. `git worktree add /tmp/wt_old HEAD
--detach`), which writes its own folder in its own format: the comparison before/after a change. The processes
that generate and measure run this file with PYTHONPATH set to the checkout measured, so only the names both
versions have are used (JobResult, RunStore.save, RunStore.save_statistics, record_plan, run_jobs, finish,
load_run).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
THIS_TREE = HERE.parents[2]
REGIMES = ("zero_shot", "linear_probe", "full", "partial", "lora", "adaptformer", "lift_plus", "bitfit", "ln_tuning",
           "vpt", "adapter", "sparse", "ssf", "coop", "clip_adapter", "proj_tuning")
FROZEN = ("zero_shot", "linear_probe")  # the pretrained tower's features: identical class means
TEST_PER_CLASS = 3  # iNaturalist 2018's validation split, the test split of the papers
KINDS = (("jobs", "job JSON"), ("rows", "rows"), ("arrays", "arrays npz"), ("stats", "stats npz"),
         ("means", "class means (shared)"), ("datasets", "data-set summary (shared)"))


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _start_peak() -> float:
    """The resident memory now (after the imports), with the peak reset to it where Linux allows (clear_refs 5),
    so that `_peak_mb` is the peak of the work that follows, not of importing torch."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mb("VmRSS") or _peak_mb()


def _peak_mb() -> float:
    """Peak resident memory in MiB: since `_start_peak` where it could reset it, else since the process began."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# generating (run in a process of the checkout measured)

def _synthetic_parts(classes: int, train_images: int, pairs: int, rng) -> tuple:
    """Per-class metrics of both splits and the per-class statistics arrays (all but the class means),
    iNaturalist-shaped: drawn once and given to every job (their sizes are what is measured, not their values)."""
    import numpy as np

    counts = np.maximum(2, np.round(1000 * np.exp(-np.arange(classes) * 6.2 / classes))).astype(np.int64)
    metrics = {}
    for split, per_class_n, n_pairs in (("test", TEST_PER_CLASS, pairs), ("train", None, 3 * pairs)):
        n = counts if per_class_n is None else np.full(classes, per_class_n)
        hits = rng.binomial(n, 0.7)
        true = rng.integers(0, classes, n_pairs)
        pred = np.where(rng.random(n_pairs) < 0.3, true, rng.integers(0, classes, n_pairs))
        triples = np.unique(np.stack([true, pred]), axis=1)
        confusion = np.concatenate([triples.T, rng.integers(1, 20, (triples.shape[1], 1))], axis=1)
        per_class = (100.0 * hits / n).tolist()
        top1 = float(100.0 * hits.sum() / n.sum())
        metrics[split] = {"top1": top1, "error_rate": 100.0 - top1, "mean_class_acc": float(np.mean(per_class)),
                          "many": 75.1, "medium": 70.2, "few": 65.3, "worst_class_acc": 0.0, "hmean_acc": 0.001,
                          "gmean_acc": 0.0, "macro_f1": 68.4,
                          "ci95": {"top1": [top1 - 0.5, top1 + 0.5], "many": [74.0, 76.0], "medium": [69.0, 71.0],
                                   "few": [64.0, 66.5]},
                          "num_samples": int(n.sum()) if split == "test" else train_images,
                          "per_class_acc": per_class, "confusion": confusion.tolist(), "seconds": 12.5, "tte": False}
    stats = {}
    for split in ("train", "test"):
        stats.update({f"{split}_count": counts if split == "train" else np.full(classes, TEST_PER_CLASS),
                      f"{split}_mean_spread": rng.random(classes), f"{split}_pairwise_spread": rng.random(classes),
                      f"{split}_quantiles": rng.random((classes, 5)),
                      f"{split}_hist": rng.integers(0, 30, (classes, 40)).astype(np.int32),
                      f"{split}_drift": rng.random(classes)})
    for key in ("gap_wasserstein", "gap_mean", "gap_pairwise"):
        stats[key] = rng.random(classes)
    return counts, metrics, stats


def _synthetic_job(index: int, classes: int, dim: int) -> tuple:
    """One job's config (its id) and trainable-parameter counts, the regimes and seeds in turn."""
    regime, seed = REGIMES[index % len(REGIMES)], index // len(REGIMES)
    config = {"dataset": "inat2018", "dataset_config": {"type": "SplitFileConfig", "root": "data/iNat2018"},
              "data_fingerprint": "d" * 64, "regime": regime, "recipe": {"epochs": 10, "lr": 0.01, "batch_size": 128},
              "protocol": "reference", "model": "ViT-B-16", "pretrained": "openai", "quick_gelu": True, "seed": seed}
    job_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    backbone, classifier = 85_800_000, classes * dim
    tuned = {"zero_shot": 0, "linear_probe": 0, "full": backbone, "partial": 7_100_000}.get(regime, 150_000)
    tensors = ["head.weight"] + [f"visual.transformer.resblocks.{b}.t{t}" for b in range(12)
                                 for t in range(12 if regime == "full" else 2 if tuned else 0)]
    trainable = tuned + (classifier if regime != "zero_shot" else 0)
    params = {"trainable": trainable, "backbone": backbone, "trainable_pct": 100.0 * trainable / backbone,
              "backbone_trainable": tuned, "classifier": trainable - tuned,
              "backbone_trainable_pct": 100.0 * tuned / backbone, "trainable_tensors": tensors}
    return job_id, config, params


def generate(run_dir: Path, jobs: int, classes: int, dim: int, train_images: int, pairs: int) -> None:
    import numpy as np

    from bench.job_result import JobResult, recipe_id
    from bench.manifest import ManifestJob, dataset_key, record_plan
    from bench.results import RunStore

    rng = np.random.default_rng(0)
    store = RunStore(run_dir)
    base_means = rng.standard_normal((classes, dim), dtype=np.float32)
    names = [f"Plantae Genus{c % 997:03d} species{c:05d}" for c in range(classes)]
    counts, metrics, shared_stats = _synthetic_parts(classes, train_images, pairs, rng)
    planned = []
    for index in range(jobs):
        job_id, config, params = _synthetic_job(index, classes, dim)
        # the frozen tower's class means are the same in every job of a frozen regime; the others' differ
        means = base_means if config["regime"] in FROZEN else base_means + np.float32(index + 1)
        stats = {**shared_stats, "test_means": means, "train_means": means + np.float32(0.5)}
        dataset = {"name": "inat2018", "num_classes": classes, "train_size": train_images,
                   "test_size": TEST_PER_CLASS * classes, "val_size": None, "max_count": int(counts.max()),
                   "min_count": int(counts.min()), "groups": {"many": 842, "medium": 4076, "few": 3224},
                   "fingerprint": "s" * 64, "train_class_counts": counts.tolist(), "classnames": names}
        statistics = {"groups": {g: {"gap_pairwise": 0.01, "gap_mean": 0.02} for g in ("many", "medium", "few")},
                      "seconds": 30.0, "file": store.save_statistics(job_id, stats)}
        label = f"inat2018/{config['regime']}/seed{config['seed']}"
        history = [{"epoch": e, "loss": 2.0 / (e + 1), "lr": 0.01, "train_batch_acc": 50.0, "seconds": 3600.0,
                    "images_per_s": 121.5} for e in range(10)]
        result = JobResult(job_id=job_id, label=label, config=config, runtime={"device": "cuda:0"}, dataset=dataset,
                           split_fingerprint="s" * 64, activation="quick_gelu", metrics=metrics,
                           statistics=statistics, params=params, epochs=10, history=history,
                           timings={"setup_s": 20.0, "train_s": 36000.0, "eval_s": 300.0, "total_s": 36400.0,
                                    "train_images_per_s": 121.5, "peak_memory_mb": 20000.0},
                           versions={"ltbench": "bench"}, log=f"logs/{job_id}.log")
        store.save(result)
        planned.append(ManifestJob(job_id=job_id, label=label, dataset="inat2018", regime=config["regime"],
                                   seed=config["seed"], recipe_id=recipe_id(config), dataset_key=dataset_key(config),
                                   data_fingerprint=config["data_fingerprint"], main=True, grids=(),
                                   lightweight=config["regime"] not in ("full", "partial", "linear_probe"),
                                   protocol="reference"))
    record_plan(run_dir, planned, protocol="reference", hparam_source="bench", command=["bench.perf.results"])


# measuring (each in a fresh process of the checkout measured)

def measure_rerun(run_dir: Path) -> dict:
    """What the driver does with a plan whose jobs are all done: run_jobs skips them, finish writes results.csv
    and prints the summary (to /dev/null here); no report."""
    import contextlib
    import types

    start = time.perf_counter()
    from bench import cli
    from bench.manifest import read_manifest
    from bench.results import RunStore

    imported_s, imported_mb = time.perf_counter() - start, _start_peak()
    start = time.perf_counter()
    store = RunStore(run_dir)
    manifest = read_manifest(run_dir)
    jobs = [types.SimpleNamespace(job_id=job_id, label=job.label) for job_id, job in manifest.jobs.items()]
    args = argparse.Namespace(force=False, backend="local", ray_address=None)
    results = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        cli.run_jobs(jobs, store, args, ["cpu"], results)
        cli.finish(store, [results[job.job_id] for job in jobs if job.job_id in results], write_report=False)
    if len(results) != len(jobs) or any(r.status != "ok" for r in results.values()):
        raise RuntimeError(f"{len(jobs) - len(results)} of {len(jobs)} jobs were not recognised as done")
    return {"import_s": imported_s, "import_mb": imported_mb, "seconds": time.perf_counter() - start,
            "peak_mb": _peak_mb(), "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "jobs": len(jobs), "code": str(Path(cli.__file__).resolve().parents[1])}


def measure_load(run_dir: Path) -> dict:
    """reports.load.load_run on the folder, then one job's per-class accuracies and class means (what a figure
    reads)."""
    start = time.perf_counter()
    from reports.load import load_run

    imported_s, imported_mb = time.perf_counter() - start, _start_peak()
    start = time.perf_counter()
    run = load_run(run_dir)
    loaded_s = time.perf_counter() - start
    job_id = sorted(run.ok.job_id)[0]
    start = time.perf_counter()
    per_class = run.result(job_id).metrics["test"]["per_class_acc"]
    means = run.stats(job_id)["test_means"][:200]
    return {"import_s": imported_s, "import_mb": imported_mb, "seconds": loaded_s, "peak_mb": _peak_mb(),
            "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "jobs": len(run.ok), "one_job_s": time.perf_counter() - start,
            "checked": [len(per_class), list(means.shape)]}


def disk_usage(run_dir: Path, jobs: int) -> dict:
    """Bytes per job in each kind of file (shared files divided among the jobs), and in all."""
    usage = {}
    for folder, _ in KINDS:
        usage[folder] = sum(p.stat().st_size for p in (run_dir / folder).glob("*") if p.is_file()) / jobs
    usage["files"] = {folder: len(list((run_dir / folder).glob("*"))) for folder, _ in KINDS}
    usage["total"] = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / jobs
    return usage


# driving

def _in_process_of(tree: Path, role: str, run_dir: Path, options: dict) -> dict:
    """Run `role` of this file in a fresh Python process that imports the checkout at `tree`."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    code = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    argv = [sys.executable, "-c", code, str(HERE), "--role", role, "--out", str(run_dir),
            *(f"--{k.replace('_', '-')}={v}" for k, v in options.items())]
    done = subprocess.run(argv, env=env, cwd=run_dir.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{role} with the code of {tree} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark(tree: Path, run_dir: Path, jobs: int, classes: int, dim: int, train_images: int, pairs: int) -> dict:
    size = {"jobs": jobs, "classes": classes, "dim": dim, "train_images": train_images, "pairs": pairs}
    start = time.perf_counter()
    _in_process_of(tree, "generate", run_dir, size)
    generated_s = time.perf_counter() - start
    rerun = _in_process_of(tree, "rerun", run_dir, {})
    load = _in_process_of(tree, "load", run_dir, {})
    return {"tree": str(tree), "size": size, "generate_s": generated_s, "rerun": rerun, "load": load,
            "disk": disk_usage(run_dir, jobs)}


def _scaled(value: float, base: float, jobs: int, target: int) -> float:
    """A figure measured over `jobs` jobs extrapolated linearly to `target` (the part above `base`, what the
    process holds before any job, grows with the jobs)."""
    return base + (value - base) * target / jobs


def format_results(measured: dict[str, dict], target: int) -> str:
    from bench.text_table import format_table

    header = ["code", "jobs", "rerun s", "rerun peak MB", "load s", "load peak MB", "JSON KB/job",
              "npz MB/job (arrays+stats)", "shared MB/job", "rows KB/job", "disk MB/job"]
    lines = []
    for name, m in measured.items():
        disk, rerun, load, jobs = m["disk"], m["rerun"], m["load"], m["size"]["jobs"]
        cells = lambda r, l, note: [  # noqa: E731
            f"{name}{note}", f"{jobs if not note else target}", f"{r[0]:.1f}", f"{r[1]:,.0f}", f"{l[0]:.1f}",
            f"{l[1]:,.0f}", f"{disk['jobs'] / 1e3:,.1f}", f"{(disk['arrays'] + disk['stats']) / 1e6:.2f}",
            f"{(disk['means'] + disk['datasets']) / 1e6:.2f}", f"{disk['rows'] / 1e3:.1f}",
            f"{disk['total'] / 1e6:.2f}"]
        lines.append(cells((rerun["seconds"], rerun["peak_mb"]), (load["seconds"], load["peak_mb"]), ""))
        if jobs != target:
            lines.append(cells((_scaled(rerun["seconds"], 0.0, jobs, target),
                                _scaled(rerun["peak_mb"], rerun["import_mb"], jobs, target)),
                               (_scaled(load["seconds"], 0.0, jobs, target),
                                _scaled(load["peak_mb"], load["import_mb"], jobs, target)),
                               f" (scaled from {jobs})"))
    return format_table(header, lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.results", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--jobs", type=int, default=372, help="finished jobs in the run folder")
    parser.add_argument("--classes", type=int, default=8142, help="classes of the data set")
    parser.add_argument("--train-images", type=int, default=437513, help="training images")
    parser.add_argument("--dim", type=int, default=768, help="feature dimension (class means are classes × dim)")
    parser.add_argument("--pairs", type=int, default=20000,
                        help="drawn (true, predicted) pairs of the test split's confusion counts (3× for train)")
    parser.add_argument("--out", help="folder for the run folders (default: a temporary folder, removed after)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--old", help="another checkout's root (e.g. a git worktree of HEAD): measured the same way")
    parser.add_argument("--old-jobs", type=int, help="jobs for the other checkout (default: --jobs); its figures "
                                                     "are also shown extrapolated to --jobs")
    parser.add_argument("--only", choices=["new", "old"], help="measure only this checkout (old: the --old one)")
    parser.add_argument("--role", choices=["generate", "rerun", "load"], help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.role:  # inside a process of the checkout measured: one step, its figures as the last line
        run_dir = Path(args.out)
        if args.role == "generate":
            generate(run_dir, args.jobs, args.classes, args.dim, args.train_images, args.pairs)
            print(json.dumps({}))
        else:
            print(json.dumps((measure_rerun if args.role == "rerun" else measure_load)(run_dir)))
        return 0
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ltbench-results-"))
    out.mkdir(parents=True, exist_ok=True)
    size = dict(classes=args.classes, dim=args.dim, train_images=args.train_images, pairs=args.pairs)
    measured = {}
    try:
        trees = [("new", THIS_TREE, args.jobs)]
        if args.old:
            trees.insert(0, ("old", Path(args.old).resolve(), args.old_jobs or args.jobs))
        trees = [tree for tree in trees if args.only in (None, tree[0])]
        for name, tree, jobs in trees:
            run_dir = out / f"run-{name}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            measured[name] = benchmark(tree, run_dir, jobs, **size)
            print(f"{name}: {jobs} jobs generated in {measured[name]['generate_s']:.0f} s and measured",
                  file=sys.stderr)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print(format_results(measured, args.jobs))
    if args.json:
        Path(args.json).write_text(json.dumps(measured, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
