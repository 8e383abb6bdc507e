"""Command line: expand data sets × regimes × seeds into jobs, run them, store results, print a summary."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import traceback
from pathlib import Path

from bench.data import DATASETS, DataError, build_dataset, dataset_config
from bench.models import WeightsUnavailableError, create_clip
from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.registry import UnknownNameError
from bench.results import RunStore, table_row
from bench.training import Job, Runtime
from regimes import REGIMES
from reports.summary import format_summary

log = logging.getLogger("ltbench")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ltbench",
        description="Fine-tune CLIP models on long-tail data sets with every regime on identical splits; "
                    "writes one JSON per job and results.csv to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--datasets", nargs="+", required=True, metavar="NAME",
                   help=f"data sets: {', '.join(DATASETS.names())}")
    p.add_argument("--regimes", nargs="+", default=["all"], metavar="NAME",
                   help=f"regimes, or 'all': {', '.join(REGIMES.names())}")
    p.add_argument("--model", default="ViT-B-16", help="open_clip model name (ltbench-tiny: tiny test model)")
    p.add_argument("--pretrained", default="openai",
                   help="open_clip pretrained tag, a local checkpoint file, or 'none' for random weights")
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
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 (fp16 where bf16 is missing) on GPU, fp32 on CPU")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: 0 on CPU, up to 8 on GPU)")
    p.add_argument("--micro-batch-size", type=int,
                   help="split each batch into micro-batches (exact gradient accumulation)")
    p.add_argument("--eval-batch-size", type=int, default=256, help="images per evaluation batch")
    p.add_argument("--no-train-eval", action="store_true", help="skip the training-set accuracy pass")
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


def expand_jobs(args: argparse.Namespace, runtime: Runtime) -> list[Job]:
    """Data sets × regimes × seeds with the recipes and data options resolved (overrides applied)."""
    regimes = REGIMES.names() if "all" in args.regimes else list(dict.fromkeys(args.regimes))
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
    jobs = []
    for dataset in dict.fromkeys(args.datasets):
        data_config = dataset_config(dataset, overrides.get(dataset))
        if args.imbalance_ratio is not None and hasattr(data_config, "imbalance_ratio"):
            data_config = dataclasses.replace(data_config, imbalance_ratio=args.imbalance_ratio)
        for regime_name in regimes:
            regime = REGIMES.get(regime_name)
            recipe = regime.recipe
            if args.epochs is not None and regime.trains:
                recipe = dataclasses.replace(recipe, epochs=args.epochs)
            own_shared = {k: v for k, v in shared.items() if k in _recipe_fields(regime_name)}
            recipe = apply_overrides(recipe, {**own_shared, **overrides.get(regime_name, {})}, regime_name)
            if recipe.epochs is None:
                recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
            for seed in args.seeds:
                jobs.append(Job(dataset, data_config, regime_name, recipe, args.model, args.pretrained, seed,
                                runtime))
    return jobs


def preflight(jobs: list[Job], runtime: Runtime) -> None:
    """Fail before any training if the device, a data set or the weights are missing."""
    from bench.training.engine import resolve_device, resolve_precision

    resolve_precision(runtime.precision, resolve_device(runtime.device))
    for config in dict.fromkeys(job.dataset_config for job in jobs):
        data = build_dataset(config, runtime.data_root, runtime.download)
        log.info("data %s", data.summary())
    for model, pretrained in dict.fromkeys((job.model, job.pretrained) for job in jobs):
        create_clip(model, pretrained)


def run_jobs(jobs: list[Job], store: RunStore, force: bool) -> list[dict]:
    from bench.training.engine import train  # heavy imports only when there is work

    results = []
    for i, job in enumerate(jobs, start=1):
        if not force and store.is_finished(job.job_id):
            log.info("[%d/%d] %s: already done (%s), skipped", i, len(jobs), job.label, store.job_path(job.job_id))
            results.append(store.load(job.job_id))
            continue
        log.info("[%d/%d] %s (job %s)", i, len(jobs), job.label, job.job_id)
        try:
            result = train(job)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.error("%s failed: %s", job.label, exc)
            result = {"status": "failed", "job_id": job.job_id, "label": job.label, "config": job.config(),
                      "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        store.save(result)
        results.append(result)
    return results


def check_fingerprints(results: list[dict]) -> None:
    """Every job of one data set config must have run on the same split."""
    seen: dict[str, str] = {}
    for r in results:
        if r.get("status") != "ok":
            continue
        key = str(r["config"]["dataset_config"])
        if seen.setdefault(key, r["split_fingerprint"]) != r["split_fingerprint"]:
            raise RuntimeError(f"{r['label']}: split fingerprint differs from the other jobs of its data set")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    if "--list" in argv:
        print(describe_registry())
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("ltbench", "bench", "regimes"):  # open_clip logs to the root logger: keep it at warnings
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else logging.INFO)
    runtime = Runtime(data_root=args.data_root, download=args.download, device=args.device,
                      precision=args.precision, workers=args.workers, micro_batch_size=args.micro_batch_size,
                      eval_batch_size=args.eval_batch_size, train_eval=not args.no_train_eval)
    try:
        jobs = expand_jobs(args, runtime)
        preflight(jobs, runtime)
    except (UnknownNameError, OverrideError) as exc:
        parser.error(str(exc))
    except (DataError, WeightsUnavailableError, ValueError) as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    store = RunStore(args.out)
    results = run_jobs(jobs, store, args.force)
    check_fingerprints(results)
    table = store.write_table()
    print(format_summary([table_row(r) for r in results]))
    print(f"\nresults: {table} (one JSON per job in {store.jobs_dir})")
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} of {len(results)} jobs failed: " + ", ".join(r["label"] for r in failed),
              file=sys.stderr)
        return 1
    return 0
