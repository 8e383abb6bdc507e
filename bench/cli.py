"""Command line: expand data sets × regimes × seeds into jobs, run them, store results, print a summary."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from bench.cache import DiskCache
from bench.data import DATASETS, DataError, build_dataset, dataset_config
from bench.grids import grid_record, load_grid, recipe_for
from bench.models import WeightsUnavailableError, create_clip
from bench.models.backbone import BUNDLED, DEMO_MODEL, RANDOM_WEIGHTS, cached_text_embeddings
from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.registry import UnknownNameError
from bench.results import RunStore, table_row, write_atomic
from bench.scheduler import device_slots, run_local
from bench.scheduler.devices import loader_workers_per_job, parse_gpus
from bench.scheduler.execute import LOGGERS
from bench.training import Job, Runtime
from regimes import REGIMES
from reports.summary import format_summary

RAY_GPU_TASK_CPUS = 8.0  # cores a Ray GPU task reserves by default (its DataLoader workers)

log = logging.getLogger("ltbench")
DEMO_DATASET = "demo_lt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ltbench",
        description="Fine-tune CLIP models on long-tail data sets with every regime on identical splits; "
                    "writes one JSON per job and results.csv to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--datasets", nargs="+", default=[DEMO_DATASET], metavar="NAME",
                   help=f"data sets: {', '.join(DATASETS.names())} (default: the offline demo)")
    p.add_argument("--regimes", nargs="+", metavar="NAME",
                   help=f"regimes, or 'all' (the default without --grid): {', '.join(REGIMES.names())}")
    p.add_argument("--grid", nargs="+", default=[], metavar="FILE",
                   help="ablation grid files (YAML or JSON, see grids/): their jobs join the run")
    p.add_argument("--model", help=f"open_clip model name (default: {DEMO_MODEL}, the bundled demo CLIP, for a "
                                   f"{DEMO_DATASET}-only run, else ViT-B-16; ltbench-tiny: tiny test model)")
    p.add_argument("--pretrained", help=f"open_clip pretrained tag, a local checkpoint file, '{BUNDLED}' (the "
                                        f"weights shipped with {DEMO_MODEL}) or 'none' for random weights "
                                        f"(default: {BUNDLED} for {DEMO_MODEL}, else openai)")
    p.add_argument("--data-root", default="data", help="folder holding the data sets (see README for layout)")
    p.add_argument("--download", action="store_true", help="download data sets that can be (CIFAR-100)")
    p.add_argument("--out", default="runs/ltbench", help="run folder: jobs/<id>.json and results.csv")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (splits do not depend on them)")
    p.add_argument("--epochs", type=int, help="override the epochs of every regime that trains")
    p.add_argument("--imbalance-ratio", type=float, help="imbalance ratio of the CIFAR-100-LT data sets")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="SCOPE.FIELD=VALUE",
                   help="override a regime's recipe or a data set's option, e.g. full.lr=0.001 "
                        "lift_plus.tte=false lora.rank=8 imagenet_lt.split_dir=/data/ImageNet_LT; "
                        "all.FIELD=VALUE sets FIELD in every selected regime that has it (see --list)")
    p.add_argument("--device", default="auto", help="auto (GPUs when visible, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 (fp16 where bf16 is missing) on GPU, fp32 on CPU")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this machine's GPUs (or CPU); ray: one Ray task per job on a cluster")
    p.add_argument("--gpus", help="GPU indices for the local backend, e.g. 0,1,2,3 (default: every visible GPU)")
    p.add_argument("--jobs-per-gpu", type=int, default=1, help="jobs sharing one GPU at a time (light regimes)")
    p.add_argument("--workers", type=int, default=1, help="jobs at a time on CPU runs")
    p.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    p.add_argument("--ray-gpus-per-job", type=float, default=1.0,
                   help="GPUs each Ray task asks for; 0 runs the tasks on CPUs")
    p.add_argument("--ray-cpus-per-job", type=float,
                   help=f"CPUs each Ray task asks for (default: {RAY_GPU_TASK_CPUS:g} for GPU tasks, which use them "
                        "as DataLoader workers; 1 for CPU tasks)")
    p.add_argument("--loader-workers", type=int,
                   help="DataLoader processes per job (default: 0 on CPU; on GPU the usable cores shared "
                        "among the jobs at once, or a Ray task's CPUs)")
    p.add_argument("--micro-batch-size", type=int,
                   help="split each batch into micro-batches (exact gradient accumulation)")
    p.add_argument("--eval-batch-size", type=int, default=256, help="images per evaluation batch")
    p.add_argument("--no-train-eval", action="store_true", help="skip the training-set accuracy pass")
    p.add_argument("--no-report", action="store_true", help="do not write report.html / report.pdf at the end")
    p.add_argument("--force", action="store_true", help="rerun jobs that already have a result")
    p.add_argument("--list", action="store_true", help="list data sets and regimes with their settings, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    return p


def describe_registry() -> str:
    lines = ["data sets (--set NAME.FIELD=VALUE):"]
    for name in DATASETS.names():
        lines.append(f"  {name}: {dataset_config(name)}")
    lines.append("regimes (--set NAME.FIELD=VALUE):")
    for name in REGIMES.names():
        regime = REGIMES.get(name)
        lines.append(f"  {name}: {regime.summary}\n      {regime.recipe}")
    return "\n".join(lines)


ALL_REGIMES = "all"  # --set all.FIELD=VALUE: every selected regime that has FIELD


def _recipe_fields(regime_name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(REGIMES.get(regime_name).recipe)}


def _resolve(recipe, regime, args, data_config):
    if args.epochs is not None and regime.trains:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
    return recipe


def expand_jobs(args: argparse.Namespace, runtime: Runtime) -> tuple[list[Job], dict[str, str]]:
    """Data sets × regimes × seeds, plus every grid's points, with recipes and data options resolved (overrides
    applied); and the grid records (name -> JSON) for the run folder. Equal jobs are kept once."""
    requested = args.regimes or ([] if args.grid else ["all"])
    regimes = REGIMES.names() if "all" in requested else list(dict.fromkeys(requested))
    for name in regimes:
        REGIMES.get(name)  # unknown name -> UnknownNameError
    overrides = parse_assignments(args.overrides)
    unknown = set(overrides) - set(DATASETS.names()) - set(REGIMES.names()) - {ALL_REGIMES}
    if unknown:
        raise OverrideError(f"--set scope {sorted(unknown)[0]!r} is neither a data set nor a regime nor "
                            f"{ALL_REGIMES!r}; valid: {', '.join(DATASETS.names() + REGIMES.names())}")
    shared = overrides.get(ALL_REGIMES, {})
    for field in shared:
        if not any(field in _recipe_fields(name) for name in regimes):
            raise OverrideError(f"--set {ALL_REGIMES}.{field}: no selected regime has a setting {field!r}")
    grids = [load_grid(path) for path in args.grid]
    jobs: dict[str, Job] = {}
    members: dict[str, list] = {grid.name: [] for grid in grids}
    for dataset in dict.fromkeys(args.datasets):
        data_config = dataset_config(dataset, overrides.get(dataset))
        if args.imbalance_ratio is not None and hasattr(data_config, "imbalance_ratio"):
            data_config = dataclasses.replace(data_config, imbalance_ratio=args.imbalance_ratio)
        for regime_name in regimes:
            regime = REGIMES.get(regime_name)
            own_shared = {k: v for k, v in shared.items() if k in _recipe_fields(regime_name)}
            recipe = apply_overrides(regime.recipe, {**own_shared, **overrides.get(regime_name, {})}, regime_name)
            recipe = _resolve(recipe, regime, args, data_config)
            for seed in args.seeds:
                job = Job(dataset, data_config, regime_name, recipe, args.model, args.pretrained, seed, runtime)
                jobs.setdefault(job.job_id, job)
        for grid in grids:
            for point in grid.points():
                regime = REGIMES.get(point["regime"])
                recipe = _resolve(recipe_for(grid, point), regime, args, data_config)
                for seed in args.seeds:
                    job = Job(dataset, data_config, point["regime"], recipe, args.model, args.pretrained, seed,
                              runtime)
                    jobs.setdefault(job.job_id, job)
                    members[grid.name].append((point, dataset, job.job_id, seed))
    records = {grid.name: grid_record(grid, members[grid.name]) for grid in grids}
    return list(jobs.values()), records


def preflight(jobs: list[Job], runtime: Runtime, device: str | None) -> None:
    """Fail before any training if the device, a data set or the weights are missing. With a `device` to run
    it on, compute the class-prompt embeddings once per data set and backbone into the run's cache."""
    from bench.training.engine import resolve_device, resolve_precision

    if device is not None:
        resolve_precision(runtime.precision, resolve_device(device))
    datasets = {}
    for config in dict.fromkeys(job.dataset_config for job in jobs):
        datasets[config] = build_dataset(config, runtime.data_root, runtime.download)
        log.info("data %s", datasets[config].summary())
    cache = DiskCache(Path(runtime.run_dir) / "cache") if runtime.run_dir else None
    for model, pretrained in dict.fromkeys((job.model, job.pretrained) for job in jobs):
        clip_model = create_clip(model, pretrained)
        if device is None or cache is None or pretrained.strip().lower() in RANDOM_WEIGHTS:
            continue  # random weights differ per seed: each job draws its own
        for config in dict.fromkeys(job.dataset_config for job in jobs if job.model == model):
            cached_text_embeddings(clip_model, model, pretrained, datasets[config].classnames, device, cache)


def ray_cpus_per_job(args: argparse.Namespace) -> float:
    """What a Ray task reserves: GPU tasks reserve the cores their DataLoader workers will use."""
    if args.ray_cpus_per_job is not None:
        return args.ray_cpus_per_job
    return RAY_GPU_TASK_CPUS if args.ray_gpus_per_job > 0 else 1.0


def loader_workers(args: argparse.Namespace, slots: list[str]) -> int:
    """DataLoader processes per job: --loader-workers; else none on CPU, a Ray GPU task's reserved CPUs, or
    this host's cores shared among its GPU jobs."""
    if args.loader_workers is not None:
        return args.loader_workers
    if args.backend == "ray":
        return int(ray_cpus_per_job(args)) if slots == ["cuda"] else 0
    return loader_workers_per_job(slots)


def _launch(jobs: list[Job], args: argparse.Namespace, store: RunStore, slots: list[str]) -> Iterator[dict]:
    if args.backend == "ray":
        from bench.scheduler.ray_backend import run_ray

        return run_ray(jobs, store.run_dir, args.ray_address, args.ray_gpus_per_job, ray_cpus_per_job(args))
    return run_local(jobs, store.run_dir, slots)


def run_jobs(jobs: list[Job], store: RunStore, args: argparse.Namespace, slots: list[str]) -> list[dict]:
    """Run the jobs without a result (all with --force); return every job's result in the order of `jobs`."""
    results: dict[str, dict] = {}
    todo = []
    for job in jobs:
        if not args.force and store.is_finished(job.job_id):
            log.info("%s: already done (%s), skipped", job.label, store.job_path(job.job_id))
            results[job.job_id] = store.load(job.job_id)
        else:
            todo.append(job)
    if todo:
        log.info("%d jobs to run (%d already done) on %s", len(todo), len(jobs) - len(todo),
                 f"Ray ({args.ray_address or 'local cluster'})" if args.backend == "ray" else ", ".join(slots))
    with tqdm(total=len(todo), desc="jobs", unit="job", disable=not sys.stderr.isatty(), position=0) as bar:
        for result in _launch(todo, args, store, slots):
            results[result["job_id"]] = result
            bar.update()
            log.info("%s: %s", result["label"], result["status"] if result["status"] == "ok" else result["error"])
    return [results[job.job_id] for job in jobs]


def check_fingerprints(results: list[dict]) -> None:
    """Every job of one data set config must have run on the same split."""
    seen: dict[str, str] = {}
    for r in results:
        if r.get("status") != "ok":
            continue
        key = str(r["config"]["dataset_config"])
        if seen.setdefault(key, r["split_fingerprint"]) != r["split_fingerprint"]:
            raise RuntimeError(f"{r['label']}: split fingerprint differs from the other jobs of its data set")


def resolve_model(args: argparse.Namespace) -> None:
    """Fill in --model/--pretrained: the bundled demo CLIP for a demo-only run, else ViT-B/16 with OpenAI weights."""
    if args.model is None:
        args.model = DEMO_MODEL if set(args.datasets) == {DEMO_DATASET} else "ViT-B-16"
    if args.pretrained is None:
        args.pretrained = BUNDLED if args.model == DEMO_MODEL else "openai"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["perf"]:
        from bench.perf import main as perf_main

        return perf_main(argv[1:])
    if argv[:1] == ["report"]:
        from reports.build import main as report_main

        return report_main(argv[1:])
    if "--list" in argv:
        print(describe_registry())
        return 0
    args = parser.parse_args(argv)
    resolve_model(args)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    console.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=logging.WARNING, handlers=[console])  # open_clip logs to the root: warnings only
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)  # per-job log files get INFO whatever the console shows
    try:
        if args.backend == "ray":
            slots = ["cuda" if args.ray_gpus_per_job > 0 else "cpu"]
        else:
            slots = device_slots(args.device, parse_gpus(args.gpus), args.jobs_per_gpu, args.workers)
        runtime = Runtime(data_root=args.data_root, download=args.download, device=args.device,
                          precision=args.precision, loader_workers=loader_workers(args, slots),
                          micro_batch_size=args.micro_batch_size, eval_batch_size=args.eval_batch_size,
                          train_eval=not args.no_train_eval, run_dir=str(Path(args.out).resolve()),
                          progress=sys.stderr.isatty())
        jobs, grid_records = expand_jobs(args, runtime)
        if args.backend == "ray":  # devices and progress bars live on the cluster's nodes
            jobs = [dataclasses.replace(j, runtime=dataclasses.replace(j.runtime, device=slots[0], progress=False))
                    for j in jobs]
        preflight(jobs, runtime, None if args.backend == "ray" else slots[0])
    except (UnknownNameError, OverrideError) as exc:
        parser.error(str(exc))
    except (DataError, WeightsUnavailableError, ValueError) as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    store = RunStore(args.out)
    for name, record in grid_records.items():
        write_atomic(store.run_dir / "grids" / f"{name}.json", record)
    results = run_jobs(jobs, store, args, slots)
    check_fingerprints(results)
    table = store.write_table()
    print(format_summary([table_row(r) for r in results]))
    print(f"\nresults: {table} (one JSON per job in {store.jobs_dir})")
    if not args.no_report:
        from reports.build import build_report

        try:
            html_path, pdf_path = build_report(store.run_dir)
            print(f"report: {html_path} and {pdf_path}")
        except Exception as exc:  # a report problem never loses the results written above
            log.error("report failed: %s (rerun: python run_bench.py report %s)", exc, store.run_dir)
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} of {len(results)} jobs failed: " + ", ".join(r["label"] for r in failed),
              file=sys.stderr)
        return 1
    return 0
