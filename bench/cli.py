"""Command line: expand data sets × regimes × seeds into jobs, run them, store results, print a summary."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from bench.cache import DiskCache
from bench.data import DATASETS, DataError, build_dataset, check_images, dataset_config
from bench.fields import MAX_EPOCHS, number
from bench.grids import grid_record, load_grid, recipe_for
from bench.manifest import ManifestJob, dataset_key, read_manifest, record_plan
from bench.models import WeightsUnavailableError, create_clip
from bench.models.backbone import BUNDLED, DEMO_MODEL, RANDOM_WEIGHTS, cached_text_embeddings, uses_quick_gelu
from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.protocols import PROTOCOLS, REFERENCE
from bench.registry import UnknownNameError
from bench.results import RunStore, StorageError, recipe_id, table_row, write_atomic
from bench.scheduler import device_slots, run_local
from bench.scheduler.devices import loader_workers_per_job, parse_gpus
from bench.scheduler.execute import LOGGERS
from bench.scheduler.signals import terminate_on_signals
from bench.training import Job, Runtime
from regimes import REGIMES, get_regime
from reports.summary import format_summary

RAY_GPU_TASK_CPUS = 8.0  # cores a Ray GPU task reserves by default (its DataLoader workers)

log = logging.getLogger("ltbench")
DEMO_DATASET = "demo_lt"
MAX_SEED = 2**31 - 1


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
    p.add_argument("--seeds", nargs="+", type=number(int, 0, MAX_SEED), default=[0],
                   help=f"training seeds, 0..{MAX_SEED} (splits do not depend on them)")
    p.add_argument("--epochs", type=number(int, 1, MAX_EPOCHS), help="override the epochs of every regime that trains")
    p.add_argument("--imbalance-ratio", type=number(float, 1), help="imbalance ratio of the CIFAR-100-LT data sets")
    p.add_argument("--protocol", default=REFERENCE.name, choices=PROTOCOLS.names(),
                   help="hyper-parameters: reference (the reference code's defaults), lift_plus_paper or lift_paper "
                        "(what the authors' published scripts ran; see README)")
    p.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                   help="build the tower with QuickGELU (default: on for the open_clip tags that were trained with "
                        "it, such as openai, and for -quickgelu model names; say so for OpenAI weights from a file)")
    p.add_argument("--verify-images", action="store_true",
                   help="decode every image before training (default: check that every listed file exists)")
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
    p.add_argument("--jobs-per-gpu", type=number(int, 1), default=1,
                   help="jobs sharing one GPU at a time (light regimes)")
    p.add_argument("--workers", type=number(int, 1), default=1, help="jobs at a time on CPU runs")
    p.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    p.add_argument("--ray-gpus-per-job", type=number(float, 0), default=1.0,
                   help="GPUs each Ray task asks for; 0 runs the tasks on CPUs")
    p.add_argument("--ray-cpus-per-job", type=number(float, 0, low_open=True),
                   help=f"CPUs each Ray task asks for (default: {RAY_GPU_TASK_CPUS:g} for GPU tasks, which use them "
                        "as DataLoader workers; 1 for CPU tasks)")
    p.add_argument("--loader-workers", type=number(int, 0),
                   help="DataLoader processes per job (default: 0 on CPU; on GPU the usable cores shared "
                        "among the jobs at once, or a Ray task's CPUs)")
    p.add_argument("--micro-batch-size", type=number(int, 1),
                   help="split each batch into micro-batches (exact gradient accumulation)")
    p.add_argument("--eval-batch-size", type=number(int, 1), default=256, help="images per evaluation batch")
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


def _resolve(recipe, regime, args, data_config, sources: dict[str, str]):
    """Fill in the epochs: --epochs for a regime that trains, else the data set's default."""
    if args.epochs is not None and regime.trains:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
        sources["epochs"] = "--epochs"
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
    if regime.trains and recipe.epochs < 1:
        raise OverrideError(f"{regime.name}.epochs={recipe.epochs}: a regime that trains needs at least 1 epoch")
    return recipe


def expand_jobs(args: argparse.Namespace, runtime: Runtime, fingerprints: dict | None = None,
                quick_gelu: bool = False) -> tuple[list[Job], dict[str, str], set[str]]:
    """Data sets × regimes × seeds, plus every grid's points, with recipes and data options resolved (protocol,
    then overrides); the grid records (name -> JSON) for the run folder; and the ids of the main jobs (the
    regimes' own recipes, not only grid variants). Equal jobs are kept once.
    `fingerprints` maps each data set config to its data fingerprint (bench.data.check_images)."""
    requested = args.regimes or ([] if args.grid else ["all"])
    regimes = REGIMES.names() if "all" in requested else list(dict.fromkeys(requested))
    for name in regimes:
        REGIMES.get(name)  # unknown name -> UnknownNameError
    protocol = PROTOCOLS.get(getattr(args, "protocol", REFERENCE.name))
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
    fingerprints = fingerprints or {}
    main_ids: set[str] = set()

    def add(dataset, data_config, regime_name, recipe, sources) -> list[Job]:
        added = []
        for seed in args.seeds:
            job = Job(dataset, data_config, regime_name, recipe, args.model, args.pretrained, seed,
                      quick_gelu=quick_gelu, data_fingerprint=fingerprints.get(data_config, ""),
                      protocol=protocol.name, runtime=runtime, hparam_sources=sources)
            added.append(jobs.setdefault(job.job_id, job))
        return added

    if args.imbalance_ratio is not None and not any(
            hasattr(dataset_config(name), "imbalance_ratio") for name in args.datasets):
        raise OverrideError(f"--imbalance-ratio: none of the data sets {', '.join(args.datasets)} has an imbalance "
                            f"ratio (CIFAR-100-LT and the generated sets do)")
    for dataset in dict.fromkeys(args.datasets):
        data_config = dataset_config(dataset, overrides.get(dataset))
        if args.imbalance_ratio is not None and hasattr(data_config, "imbalance_ratio"):
            data_config = dataclasses.replace(data_config, imbalance_ratio=args.imbalance_ratio)
        for regime_name in regimes:
            regime = REGIMES.get(regime_name)
            recipe, sources = protocol.apply(dataset, regime_name, regime.recipe, regime.trains)
            own = {**{k: v for k, v in shared.items() if k in _recipe_fields(regime_name)},
                   **overrides.get(regime_name, {})}
            recipe = apply_overrides(recipe, own, regime_name)
            sources = {**sources, **{field: "--set" for field in own}}
            added = add(dataset, data_config, regime_name, _resolve(recipe, regime, args, data_config, sources),
                        sources)
            main_ids.update(job.job_id for job in added)
        for grid in grids:
            for point in grid.points():
                regime = REGIMES.get(point["regime"])
                base, sources = protocol.apply(dataset, point["regime"], regime.recipe, regime.trains)
                sources = {**sources, **{k: f"grid {grid.name}" for k in point if k != "regime"}}
                recipe = _resolve(recipe_for(grid, point, base), regime, args, data_config, sources)
                for job in add(dataset, data_config, point["regime"], recipe, sources):
                    members[grid.name].append((point, dataset, job.job_id, job.seed))
    records = {grid.name: grid_record(grid, members[grid.name]) for grid in grids}
    return list(jobs.values()), records, main_ids


def check_data(configs, runtime: Runtime, verify_images: bool) -> dict:
    """Build every data set and check its files before anything trains; {config: data fingerprint}."""
    fingerprints = {}
    for config in dict.fromkeys(configs):
        data = build_dataset(config, runtime.data_root, runtime.download)
        fingerprints[config] = check_images(data, decode=verify_images, progress=sys.stderr.isatty())
        summary = data.summary()
        log.info("data %s: %d classes, %d train / %d test images, %d–%d per class, groups %s", summary["name"],
                 summary["num_classes"], summary["train_size"], summary["test_size"], summary["min_count"],
                 summary["max_count"], "/".join(str(v) for v in summary["groups"].values()))
    return fingerprints


def preflight(jobs: list[Job], runtime: Runtime, device: str | None) -> None:
    """Fail before any training if the weights are missing or a recipe does not fit the model. With a `device`
    to run it on, compute the class-prompt embeddings once per data set and backbone into the run's cache."""
    cache = DiskCache(Path(runtime.run_dir) / "cache") if runtime.run_dir else None
    for model, pretrained, quick_gelu in dict.fromkeys((job.model, job.pretrained, job.quick_gelu) for job in jobs):
        clip_model = create_clip(model, pretrained, quick_gelu=quick_gelu)
        mine = [job for job in jobs if (job.model, job.pretrained, job.quick_gelu) == (model, pretrained, quick_gelu)]
        for regime, recipe in dict.fromkeys((job.regime, job.recipe) for job in mine):
            get_regime(regime).check(recipe, clip_model.visual)
        if device is None or cache is None or pretrained.strip().lower() in RANDOM_WEIGHTS:
            continue  # random weights differ per seed: each job draws its own
        for config in dict.fromkeys(job.dataset_config for job in mine):
            data = build_dataset(config, runtime.data_root, runtime.download)
            cached_text_embeddings(clip_model, model, pretrained, data.classnames, device, cache,
                                   quick_gelu=quick_gelu)


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


def run_jobs(jobs: list[Job], store: RunStore, args: argparse.Namespace, slots: list[str],
             results: dict[str, dict]) -> None:
    """Run the jobs without a result (all with --force), collecting every job's result into `results` as it
    comes, so that an interrupted run still reports what finished."""
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


def resolve_model(args: argparse.Namespace) -> None:
    """Fill in --model/--pretrained: the bundled demo CLIP for a demo-only run, else ViT-B/16 with OpenAI weights."""
    if args.model is None:
        args.model = DEMO_MODEL if set(args.datasets) == {DEMO_DATASET} else "ViT-B-16"
    if args.pretrained is None:
        args.pretrained = BUNDLED if args.model == DEMO_MODEL else "openai"


def _configure_logging(quiet: bool) -> None:
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=logging.WARNING, handlers=[console])  # open_clip logs to the root: warnings only
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)  # per-job log files get INFO whatever the console shows


def plan_run(args: argparse.Namespace) -> tuple[list[Job], dict[str, str], set[str], list[str], RunStore]:
    """Everything that can be wrong is found here, before any training: options, names, data, weights,
    device and the run folder. Raises the errors `main` turns into exit 2."""
    if args.backend == "ray":
        slots = ["cuda" if args.ray_gpus_per_job > 0 else "cpu"]
    else:
        slots = device_slots(args.device, parse_gpus(args.gpus), args.jobs_per_gpu, args.workers)
        from bench.training.precision import resolve_device, resolve_precision

        resolve_precision(args.precision, resolve_device(slots[0]))
    runtime = Runtime(data_root=args.data_root, download=args.download, device=args.device,
                      precision=args.precision, loader_workers=loader_workers(args, slots),
                      micro_batch_size=args.micro_batch_size, eval_batch_size=args.eval_batch_size,
                      train_eval=not args.no_train_eval, run_dir=str(Path(args.out).resolve()),
                      progress=sys.stderr.isatty(), force=args.force)
    draft, _, _ = expand_jobs(args, runtime)  # names, overrides and grids are checked before any data is read
    fingerprints = check_data((job.dataset_config for job in draft), runtime, args.verify_images)
    store = RunStore(args.out)
    store.check_writable()  # before the models are built: a bad --out costs seconds, not minutes
    quick_gelu = uses_quick_gelu(args.model, args.pretrained, args.quick_gelu)
    jobs, grid_records, main_ids = expand_jobs(args, runtime, fingerprints, quick_gelu)
    if args.backend == "ray":  # devices and progress bars live on the cluster's nodes
        jobs = [dataclasses.replace(j, runtime=dataclasses.replace(j.runtime, device=slots[0], progress=False))
                for j in jobs]
    preflight(jobs, runtime, None if args.backend == "ray" else slots[0])
    return jobs, grid_records, main_ids, slots, store


def _manifest_entries(jobs: list[Job], grid_records: dict[str, str], main_ids: set[str]) -> list[ManifestJob]:
    grids_of: dict[str, list[str]] = {}
    for name, record in grid_records.items():
        for member in json.loads(record)["jobs"]:
            grids_of.setdefault(member["job_id"], []).append(name)
    return [ManifestJob(job_id=job.job_id, label=job.label, dataset=job.dataset, regime=job.regime, seed=job.seed,
                        recipe_id=recipe_id(job.config()), dataset_key=dataset_key(job.config()),
                        data_fingerprint=job.data_fingerprint, main=job.job_id in main_ids,
                        grids=tuple(grids_of.get(job.job_id, ())), lightweight=REGIMES.get(job.regime).lightweight,
                        protocol=job.protocol) for job in jobs]


def finish(store: RunStore, results: list[dict], write_report: bool) -> None:
    """results.csv, the summary and the report: written whatever failed, each failure logged, not raised."""
    try:
        table = store.write_table(read_manifest(store.run_dir).current_ids())
        print(format_summary([table_row(r) for r in results]))
        print(f"\nresults: {table} (one JSON per job in {store.jobs_dir})")
    except (OSError, ValueError) as exc:  # a full disk, an unreadable manifest
        log.error("cannot write results.csv: %s", exc)
    if write_report:
        from reports.build import build_report

        try:
            html_path, pdf_path = build_report(store.run_dir)
            print(f"report: {html_path} and {pdf_path}")
        except Exception as exc:  # a report problem never loses the results written above
            log.error("report failed: %s (rerun: python run_bench.py report %s)", exc, store.run_dir)


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
    _configure_logging(args.quiet)
    try:
        with terminate_on_signals():
            jobs, grid_records, main_ids, slots, store = plan_run(args)
            record_plan(store.run_dir, _manifest_entries(jobs, grid_records, main_ids), protocol=args.protocol,
                        hparam_source=PROTOCOLS.get(args.protocol).hparam_source,
                        command=["run_bench.py", *argv])
            for name, record in grid_records.items():
                write_atomic(store.run_dir / "grids" / f"{name}.json", record)
    except (UnknownNameError, OverrideError) as exc:
        parser.error(str(exc))
    except (DataError, WeightsUnavailableError, StorageError, ValueError) as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ltbench: interrupted before any training", file=sys.stderr)
        return 130
    results: dict[str, dict] = {}
    interrupted = False
    try:
        with terminate_on_signals():
            run_jobs(jobs, store, args, slots, results)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nltbench: interrupted; {sum(r.get('status') == 'ok' for r in results.values())} finished jobs are "
              f"saved in {store.jobs_dir}; rerun the same command to resume the rest", file=sys.stderr)
    finally:  # an interrupted run skips the report, a quick exit: `python run_bench.py report RUN` writes it
        finish(store, [results[job.job_id] for job in jobs if job.job_id in results],
               write_report=not (args.no_report or interrupted))
    if interrupted:
        return 130
    failed = [r for r in results.values() if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} of {len(jobs)} jobs failed: " + "; ".join(f"{r['label']} ({r.get('error')})"
                                                                        for r in failed), file=sys.stderr)
        return 1
    return 0
