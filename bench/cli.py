"""Command line: `run` (the default) plans data sets × regimes × seeds and grids into jobs (bench.plan), runs
them, stores results and prints a summary; `report` and `perf` hand over to their own tools; `list` shows every
setting `--set` can change."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from pathlib import Path
from textwrap import indent
from typing import Any, Iterator

from tqdm import tqdm

from bench.cache import DiskCache
from bench.data import DATASETS, DataError, build_dataset, check_images, dataset_config
from bench.fields import MAX_BATCH, MAX_EPOCHS, MAX_PROCESSES, field_help, number
from bench.grids import METRICS
from bench.io import StorageError, write_atomic
from bench.manifest import read_manifest, record_plan
from bench.messages import first_line
from bench.models import WeightsUnavailableError, create_clip
from bench.models.timm_towers import IMAGENET_MODELS
from bench.models.backbone import (BUNDLED, DEMO_MODEL, RANDOM_WEIGHTS, backbone_of, cached_text_embeddings,
                                   check_prompt_tokenizer)
from bench.overrides import OverrideError
from bench.plugins import PluginError, load_plugins
from bench.plan import (ALL_REGIMES, DEFAULT_MODEL, DEFAULT_PRETRAINED, DEMO_DATASET, DEMO_REGIMES, SELECTION_FILE,
                        Plan, Selection, check_measurable, plan)
from bench.protocols import PROTOCOLS, REFERENCE, own_default_notes
from bench.job_result import JobFailure, JobOutcome, JobRow
from bench.derived.planning import check_parents_saved
from bench.registry import REGIMES, REMEDIES, UnknownNameError, get_regime
from bench.results import RunStore
from bench.scheduler import device_slots, run_local
from bench.scheduler.devices import loader_workers_per_job, parse_gpus
from bench.scheduler.execute import LOGGERS, save_in_driver
from bench.scheduler.ray_backend import ClusterError
from bench.scheduler.signals import terminate_on_signals
from bench.scheduler.slurm_options import add_slurm_options, check_backend_options, slurm_settings
from bench.text_table import format_table
from bench.tracking import TRACKERS, TrackingOptions, check_trackers
from bench.training import Job, Runtime
from bench.weights import CONTENTS as WEIGHTS_CONTENTS, check_saved_weights, weights_summary
from reports.summary import format_summary

RAY_GPU_TASK_CPUS = 8.0  # cores a Ray GPU task reserves by default (its DataLoader workers)
REMOTE_BACKENDS = ("ray", "slurm")  # their jobs run on the cluster's nodes, not on this machine
MAX_SEED = 2**31 - 1

log = logging.getLogger("ltbench")


def _plugin_option(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                        help="import your own regimes, data sets or losses (registered with the built-ins' "
                             "decorators; repeatable; installed packages' ltbench.plugins entry points load "
                             "always): they run, are listed and reported like the built-ins (see README, "
                             "'Benchmark your own method')")


def _selection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection", "what runs: data sets × regimes × seeds, grids, the model")
    group.add_argument("--datasets", nargs="+", default=[DEMO_DATASET], metavar="NAME",
                       help=f"data sets: {', '.join(DATASETS.names())} (default: the offline demo)")
    group.add_argument("--regimes", nargs="+", metavar="NAME",
                       help=f"regimes, or '{ALL_REGIMES}' (the default without --grid; a {DEMO_DATASET}-only run: "
                            f"the demo's {' '.join(DEMO_REGIMES)}): {', '.join(REGIMES.names())}")
    group.add_argument("--grid", nargs="+", default=[], metavar="FILE",
                       help="ablation grid files (YAML or JSON, see grids/): their jobs join the run")
    group.add_argument("--seeds", nargs="+", type=number(int, 0, MAX_SEED), default=[0],
                       help=f"training seeds, 0..{MAX_SEED} (splits do not depend on them)")
    group.add_argument("--remedies", nargs="+", default=[], metavar="NAME",
                       help=f"derived jobs on the main jobs once they finish: {', '.join(REMEDIES.names())} "
                            f"(wise: WiSE-FT per α; soup: uniform and greedy soups over --seeds or --select "
                            f"candidates; posthoc: tau_norm, logit_adjust, crt, lws on cached features); their "
                            f"settings: --set wise.alphas=0,0.5,1 (see `settings`). A {DEMO_DATASET}-only run "
                            f"without --regimes: wise on full")
    group.add_argument("--remedy-regimes", nargs="+", default=[], metavar="REGIME",
                       help="the regimes whose main jobs --remedies applies to (default: all it applies to)")
    group.add_argument("--model", help=f"open_clip model name (CLIP ViTs and ResNets: ViT-B-16, ViT-L-14-336, "
                                       f"RN50, ...) or one of the references' ImageNet backbones through timm "
                                       f"({', '.join(IMAGENET_MODELS)}); default: {DEMO_MODEL}, the bundled demo "
                                       f"CLIP, for a {DEMO_DATASET}-only run, else {DEFAULT_MODEL}; ltbench-tiny: "
                                       f"tiny test model")
    group.add_argument("--pretrained", help=f"open_clip pretrained tag, a local checkpoint file, '{BUNDLED}' (the "
                                            f"weights shipped with {DEMO_MODEL}) or 'none' for random weights "
                                            f"(default: {BUNDLED} for {DEMO_MODEL}, else {DEFAULT_PRETRAINED})")
    _plugin_option(group)
    group.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                       help="build the tower with QuickGELU (default: on for the open_clip tags that were trained "
                            "with it, such as openai, and for -quickgelu model names; say so for OpenAI weights "
                            "from a file)")


def _recipe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe", "the hyper-parameters of every job")
    group.add_argument("--protocol", default=REFERENCE.name, choices=PROTOCOLS.names(),
                       help="hyper-parameters: reference (ltbench's defaults: LIFT-plus's config but for a few "
                            "values of its own, each naming its source), lift_plus_defaults (exactly LIFT-plus's "
                            "config), lift_plus_paper or lift_paper (what each line of the authors' published "
                            "scripts ran, on exactly the jobs it ran; see README)")
    group.add_argument("--epochs", type=number(int, 1, MAX_EPOCHS),
                       help="override the epochs of every regime that trains")
    group.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                       metavar="SCOPE.FIELD=VALUE",
                       help="override a regime's recipe or a data set's option, e.g. full.lr=0.001 "
                            "lift_plus.tte=false lora.rank=8 imagenet_lt.split_dir=/data/ImageNet_LT; "
                            f"{ALL_REGIMES}.FIELD=VALUE sets FIELD in every selected regime that has it; the "
                            "scope must be in the run. The more specific wins: grid point or --select candidate > "
                            f"REGIME. or DATASET. > {ALL_REGIMES}. > --epochs/--imbalance-ratio > --protocol; "
                            "every overridden value is listed before training (see list)")
    group.add_argument("--select", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="model selection: each selected regime that has FIELD runs once per value (per "
                            "combination when repeated for several fields), and the report names, per data set, "
                            "regime and seed, the value best on the validation split with its test numbers, beside "
                            "the value choosing on test would have picked; every data set needs a validation split "
                            "(e.g. --set cifar100_lt.val_fraction=0.1, --set imagenet_lt.val_list=val.txt)")
    group.add_argument("--select-metric", choices=METRICS,
                       help="the validation metric --select picks on (default: mean_class_acc)")


def _data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data", "where the data sets are and how they are checked")
    group.add_argument("--data-root", default="data", help="folder holding the data sets (see README for layout)")
    group.add_argument("--download", action="store_true", help="download data sets that can be (CIFAR-100)")
    group.add_argument("--imbalance-ratio", type=number(float, 1),
                       help="imbalance ratio of the CIFAR-100-LT data sets")
    group.add_argument("--verify-images", action="store_true",
                       help="decode every image before training (default: check that every listed file exists)")


def _execution_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution", "where and how the jobs run")
    group.add_argument("--device", default="auto", help="auto (GPUs when visible, else CPU), cpu, cuda or cuda:N")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                       help="auto: bf16 (fp16 where bf16 is missing) on GPU, fp32 on CPU")
    group.add_argument("--backend", default="local", choices=["local", "ray", "slurm"],
                       help="local: this machine's GPUs (or CPU); ray: one Ray task per job on a cluster; slurm: "
                            "one SLURM array task per job (the slurm options below)")
    group.add_argument("--gpus", help="GPU indices for the local backend, e.g. 0,1,2,3 (default: every visible GPU)")
    group.add_argument("--jobs-per-gpu", type=number(int, 1, MAX_PROCESSES), default=1,
                       help="jobs sharing one GPU at a time (light regimes)")
    group.add_argument("--workers", type=number(int, 1, MAX_PROCESSES), default=1, help="jobs at a time on CPU runs")
    group.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    group.add_argument("--ray-gpus-per-job", type=number(float, 0), default=1.0,
                       help="GPUs each Ray task asks for; 0 runs the tasks on CPUs")
    group.add_argument("--ray-cpus-per-job", type=number(float, 0, low_open=True),
                       help=f"CPUs each Ray task asks for (default: {RAY_GPU_TASK_CPUS:g} for GPU tasks, which use "
                            "them as DataLoader workers; 1 for CPU tasks)")
    group.add_argument("--loader-workers", type=number(int, 0, MAX_PROCESSES),
                       help="DataLoader processes per job (default: 0 on CPU; on GPU the usable cores shared "
                            "among the jobs at once, or a Ray task's CPUs)")
    group.add_argument("--resize-on-device", action="store_true",
                       help="loader workers only decode and crop; the resize (Pillow's own filter, same pixels) "
                            "runs on the device: ~1.5x images/s per loader core, for GPU runs short of cores")
    group.add_argument("--micro-batch-size", type=number(int, 1, MAX_BATCH),
                       help="split each batch into micro-batches (exact gradient accumulation)")
    group.add_argument("--eval-batch-size", type=number(int, 1, MAX_BATCH), default=256,
                       help="images per evaluation batch")
    group.add_argument("--no-train-eval", action="store_true", help="skip the training-set accuracy pass")
    group.add_argument("--force", action="store_true", help="rerun jobs that already have a result")


def _output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output", "what is written and shown")
    group.add_argument("--out", default="runs/ltbench", help="run folder: jobs/<id>.json and results.csv")
    group.add_argument("--no-report", action="store_true", help="do not write report.html / report.pdf at the end")
    group.add_argument("--list", action="store_true", help="the list command: every data set and regime with "
                                                           "its settings, then exit")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    group.add_argument("--save-weights", nargs="?", const=WEIGHTS_CONTENTS[0], choices=WEIGHTS_CONTENTS,
                       help="keep each job's trained parameters in OUT/weights/<job id>.safetensors (bench.load_job "
                            "rebuilds the model): trainable (the default) the tensors that trained, all the "
                            "model's whole state_dict; a finished job without them is refused unless --force")


def _tracking_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("experiment trackers", "each job's curves, final metrics and config, "
                                                             "off by default (see README)")
    group.add_argument("--log", nargs="+", default=[], choices=TRACKERS.names(), metavar="NAME",
                       help=f"log every job to these trackers: {', '.join(TRACKERS.names())} (TensorBoard event "
                            "files in OUT/tensorboard/<job id>/, MLflow's file store OUT/mlruns)")
    group.add_argument("--wandb-project", help="W&B project (default: ltbench)")
    group.add_argument("--wandb-group", help="W&B group of the jobs' runs (default: the run folder's name)")
    group.add_argument("--wandb-offline", action="store_true",
                       help="W&B runs stay in OUT/wandb for `wandb sync` (as WANDB_MODE=offline)")
    group.add_argument("--mlflow-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the file "
                                            "store OUT/mlruns)")
    group.add_argument("--mlflow-experiment", help="MLflow experiment (default: the run folder's name)")


def tracking_of(args: argparse.Namespace) -> TrackingOptions:
    """The trackers chosen (each once) and their settings; a setting not given stays None."""
    return TrackingOptions(trackers=tuple(dict.fromkeys(args.log)), wandb_project=args.wandb_project,
                           wandb_group=args.wandb_group, wandb_offline=args.wandb_offline or None,
                           mlflow_uri=args.mlflow_uri, mlflow_experiment=args.mlflow_experiment)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The run command's options, in groups: `ltbench [options]` and `ltbench run [options]` share them."""
    for add in (_selection_options, _recipe_options, _data_options, _execution_options, add_slurm_options,
                _output_options, _tracking_options):
        add(parser)


def build_parser() -> argparse.ArgumentParser:
    """`ltbench [run] [options]`, `ltbench report RUN …`, `ltbench perf …`, `ltbench list`."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ltbench", formatter_class=formatter,
        usage="%(prog)s [run] [options] | %(prog)s report RUN [RUN ...] [--out DIR] [--latex] [--csv-wide] [--all] "
              "[--markdown] | %(prog)s perf [options] | %(prog)s list",
        description="Fine-tune CLIP models on long-tail data sets with every regime on identical splits; "
                    "writes one JSON per job and results.csv to --out. Without a command: run.")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _add_run_options(commands.add_parser("run", prog="ltbench run", formatter_class=formatter,
                                         help="plan, check and run the jobs (the default; the options below)"))
    commands.add_parser("report", prog="ltbench report", add_help=False,
                        help="write report.html and report.pdf for a run folder, or several merged (--out DIR), "
                             "and the paper's table (--latex, --csv-wide): report RUN [RUN ...] (report -h for "
                             "more)")
    commands.add_parser("perf", prog="ltbench perf", add_help=False,
                        help="measure what every regime costs on this device (perf -h for its options)")
    _plugin_option(commands.add_parser("list", prog="ltbench list",
                                       help="every data set and regime with its settings (the same as --list)"))
    _add_run_options(parser)
    return parser


def selection_of(args: argparse.Namespace) -> Selection:
    """The run's selection from the parsed options (defaults resolved by Selection); --select-metric without
    --select, which would pick nothing, is refused."""
    if args.select_metric and not args.select:
        raise OverrideError(f"--select-metric {args.select_metric} picks among --select candidates and there are "
                            f"none: add --select FIELD=V1,V2,... or drop --select-metric")
    return Selection(datasets=tuple(args.datasets), regimes=tuple(args.regimes or ()), grids=tuple(args.grid),
                     model=args.model, pretrained=args.pretrained, seeds=tuple(args.seeds), epochs=args.epochs,
                     imbalance_ratio=args.imbalance_ratio, protocol=args.protocol, quick_gelu=args.quick_gelu,
                     overrides=tuple(args.overrides), select=tuple(args.select),
                     select_metric=args.select_metric or Selection.select_metric, remedies=tuple(args.remedies),
                     remedy_regimes=tuple(args.remedy_regimes))


def _type_text(annotation: Any) -> str:
    """What --set accepts, in words: int, float | None, or a Literal's choices a|b|c."""
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    if typing.get_origin(annotation) is tuple:  # layers: a list of block indices
        return f"list of {typing.get_args(annotation)[0].__name__}"
    if typing.get_args(annotation):  # Optional / Union
        return " | ".join(_type_text(arg) for arg in typing.get_args(annotation))
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _value_text(value: Any) -> str:
    """A default as one would write it after `--set SCOPE.FIELD=` ('' for an empty text)."""
    if isinstance(value, bool):
        return str(value).lower()
    return "''" if value == "" else str(value)


def settings_table(config: Any, notes: dict[str, str] | None = None) -> str:
    """One line per field of a config dataclass: name, type, default, valid range and help (the last two from
    the field's metadata, see bench.fields.setting), the help followed by `notes` on the field's default: where a
    default that is not LIFT-plus's comes from."""
    hints = typing.get_type_hints(type(config))
    notes = notes or {}
    rows = []
    for f in dataclasses.fields(config):
        if f.init:
            bounds = f.metadata.get("bounds")
            text = "; default: ".join(filter(None, (field_help(type(config), f.name), notes.get(f.name))))
            rows.append([f.name, _type_text(hints[f.name]), _value_text(getattr(config, f.name)),
                         bounds.describe() if bounds else "", text])
    return format_table(["setting", "type", "default", "range", "help"], rows)


def describe_settings() -> str:
    """The list command: every data set, regime and remedy with the settings --set can change."""
    sections = ["DATA SETS (--set DATASET.FIELD=VALUE)"]
    sections += [f"{name}\n{indent(settings_table(dataset_config(name), own_default_notes(name)), '    ')}"
                 for name in DATASETS.names()]
    sections.append(f"REGIMES (--set REGIME.FIELD=VALUE, or {ALL_REGIMES}.FIELD=VALUE for every selected regime "
                    f"that has FIELD)")
    sections += [f"{name}: {REGIMES.get(name).summary}\n"
                 f"{indent(settings_table(REGIMES.get(name).recipe, own_default_notes(name)), '    ')}"
                 for name in REGIMES.names()]
    sections.append("REMEDIES (--remedies NAME; --set REMEDY.FIELD=VALUE)")
    sections += [f"{name}: {REMEDIES.get(name).summary} ({REMEDIES.get(name).source})\n"
                 f"{indent(settings_table(REMEDIES.get(name)().recipe), '    ')}" for name in REMEDIES.names()]
    return "\n\n".join(sections)


def check_data(configs, runtime: Runtime, verify_images: bool) -> dict:
    """Build every data set and check its files before anything trains; {config: data fingerprint}."""
    from bench.data.checks import summary_line
    from bench.data.options import untested_notes

    fingerprints = {}
    for config in dict.fromkeys(configs):
        data = build_dataset(config, runtime.data_root, runtime.download)
        fingerprints[config] = check_images(data, decode=verify_images, progress=sys.stderr.isatty())
        log.info("%s", summary_line(data.summary()))  # one line per data set, never its class names or counts
        for note in untested_notes(data):  # allowed (allow_untested_classes), so said even with -q
            log.warning("%s", note)
    return fingerprints


def check_metrics(run_plan: Plan, runtime: Runtime) -> None:
    """Every metric the run picks on or plots (Plan.measured) has a value on the data of the jobs it is taken on,
    or nothing trains. A data-set point of a grid with data-set axes may lack it (CIFAR-100-LT at imbalance ratio
    10 has no few-shot class) while another has it: said before training, and its jobs run for the other metrics."""
    jobs = {job.job_id: job for job in run_plan.jobs}
    lacking: dict[str, list[str]] = {}
    points: dict[str, int] = {}
    for measured in run_plan.measured:
        if measured.group is not None:
            points[measured.group] = points.get(measured.group, 0) + 1
        try:
            for dataset, config in dict.fromkeys((jobs[i].dataset, jobs[i].dataset_config) for i in measured.job_ids):
                check_measurable(build_dataset(config, runtime.data_root, runtime.download), dataset,
                                 measured.metric, measured.where, measured.splits)
        except OverrideError as exc:
            if measured.group is None:
                raise
            lacking.setdefault(measured.group, []).append(str(exc))
    for grid, lines in lacking.items():
        if len(lines) == points[grid]:
            raise OverrideError(f"{lines[0]} (and so does every other point of grid {grid})" if len(lines) > 1
                                else lines[0])
        for line in lines:  # said even with -q
            log.warning("%s; its jobs run (their other metrics are reported), its point stays empty in the "
                        "grid's figures", line)


def preflight(jobs: list[Job], runtime: Runtime, device: str | None) -> None:
    """Fail before any training if the weights are missing or a recipe does not fit the model. With a `device`
    to run it on, compute the class-prompt embeddings once per data set and backbone into the run's cache."""
    cache = DiskCache(Path(runtime.run_dir) / "cache") if runtime.run_dir else None
    for model, pretrained, quick_gelu in dict.fromkeys((job.model, job.pretrained, job.quick_gelu) for job in jobs):
        clip_model = create_clip(model, pretrained, quick_gelu=quick_gelu)
        mine = [job for job in jobs if (job.model, job.pretrained, job.quick_gelu) == (model, pretrained, quick_gelu)]
        for regime, recipe, config in dict.fromkeys((job.regime, job.recipe, job.dataset_config) for job in mine):
            text_tower = get_regime(regime).uses_text_tower(recipe)  # its check sees the data set's class prompts
            classnames = build_dataset(config, runtime.data_root, runtime.download).classnames if text_tower else []
            get_regime(regime).check(recipe, backbone_of(clip_model, model, classnames, text_tower=text_tower))
        prompted = [job for job in mine if get_regime(job.regime).needs_text_embeddings(job.recipe)]
        if prompted:  # also where no embedding is computed here (random weights, Ray): every job would fail
            check_prompt_tokenizer(clip_model, model)
        if device is None or cache is None or pretrained.strip().lower() in RANDOM_WEIGHTS:
            continue  # random weights differ per seed: each job draws its own
        for config in dict.fromkeys(job.dataset_config for job in prompted):
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
    if args.backend == "slurm":
        return slurm_settings(args).cpus_per_job if slots == ["cuda"] else 0
    return loader_workers_per_job(slots)


def _launch(jobs: list[Job], args: argparse.Namespace, store: RunStore, slots: list[str]
            ) -> Iterator[JobOutcome]:
    if args.backend == "ray":
        from bench.scheduler.ray_backend import run_ray

        return run_ray(jobs, store.run_dir, args.ray_gpus_per_job, ray_cpus_per_job(args))
    if args.backend == "slurm":
        from bench.scheduler.slurm_backend import run_slurm

        return run_slurm(jobs, store.run_dir, slurm_settings(args))
    return run_local(jobs, store.run_dir, slots)


def run_jobs(jobs: list[Job], store: RunStore, args: argparse.Namespace, slots: list[str],
             results: dict[str, JobRow]) -> None:
    """Run the jobs without a result (all with --force), collecting every job's outcome in brief (JobRow: status,
    label, error, results.csv row) into `results` as it comes, so that an interrupted run still reports what
    finished. A finished job is recognised from its row file (bench.results), without reading its result. The jobs
    that train run first, then the derived ones (bench.derived) whose parents finished; a derived job whose
    parent failed is recorded as failed with the parent's error, without running."""
    todo = []
    for job in jobs:
        done = None if args.force else store.row(job.job_id)
        if done is not None and done.status == "ok":
            log.info("%s: already done (%s), skipped", job.label, store.job_path(job.job_id))
            results[job.job_id] = done
        else:
            todo.append(job)
    if todo:
        log.info("%d jobs to run (%d already done) on %s", len(todo), len(jobs) - len(todo),
                 _where(args, slots))
    with tqdm(total=len(todo), desc="jobs", unit="job", disable=not sys.stderr.isatty(), position=0) as bar:
        for stage in ([job for job in todo if job.derived is None], [job for job in todo if job.derived]):
            runnable = _runnable(stage, results, store)
            bar.update(len(stage) - len(runnable))
            for result in _launch(runnable, args, store, slots) if runnable else ():
                results[result.job_id] = JobRow.of(result)  # the full result is not kept
                bar.update()
                log.info("%s: %s", result.label, result.status)  # a failure's error: once, in the summary at the end


def _runnable(stage: list[Job], results: dict[str, JobRow], store: RunStore) -> list[Job]:
    """The jobs of a stage whose parents finished; each of the others is recorded as failed, naming its parent."""
    runnable = []
    for job in stage:
        parents = [results.get(parent) for parent in (job.derived.parents if job.derived else ())]
        if None in parents:
            why = "its parent job did not run (an interrupted run: rerun the command)"
        else:
            failed = next((row for row in parents if row.status != "ok"), None)
            why = failed and f"its parent {failed.label} did not finish ({failed.status}: {failed.error})"
        if why:
            outcome = save_in_driver(JobFailure.of(job, why), store)
            results[job.job_id] = JobRow.of(outcome)
            log.info("%s: %s", job.label, outcome.status)
        else:
            runnable.append(job)
    return runnable


def _where(args: argparse.Namespace, slots: list[str]) -> str:
    if args.backend == "ray":
        return f"Ray ({args.ray_address or 'local cluster'})"
    if args.backend == "slurm":
        settings = slurm_settings(args)
        return (f"SLURM ({settings.partition or 'default partition'}, {settings.gpus_per_job} GPU and "
                f"{settings.cpus_per_job} CPUs per task)" if settings.cluster == "slurm" else
                f"submitit's local executor ({slots[0]}, {settings.at_once} at a time)")
    return ", ".join(slots)


def _configure_logging(quiet: bool) -> None:
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=logging.WARNING, handlers=[console])  # open_clip logs to the root: warnings only
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)  # per-job log files get INFO whatever the console shows


def _slots(args: argparse.Namespace) -> list[str]:
    """Where the jobs run; a precision the device cannot do fails here, before any data is read."""
    if args.backend == "ray":
        return ["cuda" if args.ray_gpus_per_job > 0 else "cpu"]
    if args.backend == "slurm":
        return ["cuda" if slurm_settings(args).gpus_per_job else "cpu"]
    slots = device_slots(args.device, parse_gpus(args.gpus), args.jobs_per_gpu, args.workers)
    from bench.training.precision import resolve_device, resolve_precision

    resolve_precision(args.precision, resolve_device(slots[0]))
    return slots


def _runtime(args: argparse.Namespace, slots: list[str]) -> Runtime:
    return Runtime(data_root=args.data_root, download=args.download, device=args.device, precision=args.precision,
                   loader_workers=loader_workers(args, slots), micro_batch_size=args.micro_batch_size,
                   eval_batch_size=args.eval_batch_size, train_eval=not args.no_train_eval,
                   run_dir=str(Path(args.out).resolve()), progress=sys.stderr.isatty(), force=args.force,
                   resize_on_device=args.resize_on_device, tracking=tracking_of(args), save_weights=args.save_weights,
                   plugins=tuple(p.spec for p in load_plugins(args.plugin) if p.kind != "entry point"))


def plan_run(args: argparse.Namespace, selection: Selection) -> tuple[Plan, list[str], RunStore]:
    """Everything that can be wrong is found here, before any training: options, names, data, weights,
    device and the run folder. Raises the errors `run_command` turns into exit 2."""
    slots = _slots(args)
    runtime = _runtime(args, slots)
    draft = plan(selection, runtime)  # names, overrides and grids are checked before any data is read
    for line in draft.overridden:  # a value the user gave that another source beat: said even with -q
        log.warning("%s", line)
    for line in draft.notes:  # what a remedy asked for does not apply to, and why: said even with -q
        log.warning("%s", line)
    if args.backend == "ray":  # a cluster that can never run a job's task is refused, not waited for
        from bench.scheduler.ray_backend import connect

        connect(args.ray_address, args.ray_gpus_per_job, ray_cpus_per_job(args))
    fingerprints = check_data((job.dataset_config for job in draft.jobs), runtime, args.verify_images)
    check_metrics(draft, runtime)
    store = RunStore(args.out)
    store.check_writable()  # before the models are built: a bad --out costs seconds, not minutes
    if args.backend == "slurm":  # submitit, sbatch and the log folder, before the models are built
        from bench.scheduler.slurm_backend import check_cluster

        check_cluster(slurm_settings(args))
    check_trackers(runtime.tracking, store.run_dir)
    run_plan = plan(selection, runtime, fingerprints)
    if args.backend in REMOTE_BACKENDS:  # devices and progress bars live on the cluster's nodes
        run_plan = dataclasses.replace(run_plan, jobs=[
            dataclasses.replace(j, runtime=dataclasses.replace(j.runtime, device=slots[0], progress=False))
            for j in run_plan.jobs])
    if args.save_weights and not args.force:  # a finished job is never retrained behind the user's back
        check_saved_weights([job for job in run_plan.jobs if job.derived is None], store, args.save_weights)
    if not args.force:  # the derived jobs' finished parents saved what they read
        check_parents_saved(run_plan.jobs, store)
    preflight(run_plan.jobs, runtime, None if args.backend in REMOTE_BACKENDS else slots[0])
    return run_plan, slots, store


def finish(store: RunStore, results: list[JobRow | JobOutcome], write_report: bool) -> None:
    """results.csv, the summary (from the jobs' rows) and the report: written whatever failed, each failure logged,
    not raised."""
    try:
        table = store.write_table(read_manifest(store.run_dir).current_ids())
        print(format_summary([r.to_row() for r in results]))
        print(f"\nresults: {table} (one JSON per job in {store.jobs_dir})")
    except (OSError, ValueError) as exc:  # a full disk, an unreadable manifest
        log.error("cannot write results.csv: %s", exc)
    if write_report:
        from reports.build import write_report as write_html_and_pdf
        from reports.load import load_run

        try:
            run = load_run(store.run_dir)
            html_path, pdf_path = write_html_and_pdf(run)
            print(f"report: {html_path} and {pdf_path}")
            for line in run.damaged.values():  # a damaged file of an earlier job: the report leaves its part out
                log.warning("report: %s", line)
        except Exception as exc:  # a report problem never loses the results written above
            log.error("report failed: %s (rerun: python run_bench.py report %s)", exc, store.run_dir)


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """Plan and check everything, record the plan, run the jobs, then write the table and the report."""
    _configure_logging(args.quiet)
    try:
        with terminate_on_signals():
            check_backend_options(args, parser)
            run_plan, slots, store = plan_run(args, selection_of(args))
            record_plan(store.run_dir, run_plan.manifest, protocol=args.protocol,
                        hparam_source=PROTOCOLS.get(args.protocol).hparam_source,
                        command=["run_bench.py", *argv], plugins=[p.record() for p in load_plugins(args.plugin)])
            for name, record in run_plan.grids.items():
                write_atomic(store.run_dir / "grids" / f"{name}.json", record)
            if run_plan.selection is not None:
                write_atomic(store.run_dir / SELECTION_FILE, run_plan.selection)
    except (UnknownNameError, OverrideError) as exc:
        parser.error(str(exc))
    except (DataError, WeightsUnavailableError, StorageError, ClusterError, ValueError) as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ltbench: interrupted before any training", file=sys.stderr)
        return 130
    jobs = run_plan.jobs
    results: dict[str, JobRow] = {}
    interrupted = False
    try:
        with terminate_on_signals():
            run_jobs(jobs, store, args, slots, results)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nltbench: interrupted; {sum(r.status == 'ok' for r in results.values())} finished jobs are "
              f"saved in {store.jobs_dir}; rerun the same command to resume the rest", file=sys.stderr)
    finally:  # an interrupted run skips the report, a quick exit: `python run_bench.py report RUN` writes it
        finish(store, [results[job.job_id] for job in jobs if job.job_id in results],
               write_report=not (args.no_report or interrupted))
    if args.save_weights:  # the size of what was kept, also with -q
        print(weights_summary(store, [job_id for job_id, row in results.items() if row.status == "ok"]))
    if interrupted:
        return 130
    failed = [r for r in results.values() if r.status != "ok"]
    if failed:
        print(f"{len(failed)} of {len(jobs)} jobs failed (each job's traceback is in its JSON in {store.jobs_dir} "
              f"and in its log):", file=sys.stderr)
        for r in failed:
            print(f"  {failure_line(r, store)}", file=sys.stderr)
        return 1
    return 0


def failure_line(row: JobRow, store: RunStore) -> str:
    """A failed job in one line: its label, the error's type and first line, and where its log is."""
    log_path = store.log_path(row.job_id)
    where = f" (log: {log_path})" if log_path.is_file() else ""
    return f"{row.label}: {first_line(row.error or row.status)}{where}"


def report_command(argv: list[str]) -> int:
    from reports.build import main as report_main  # the report's plotting libraries load only when asked for

    return report_main(argv)


def perf_command(argv: list[str]) -> int:
    from bench.perf import main as perf_main

    return perf_main(argv)


HANDED_OVER = {"report": report_command, "perf": perf_command}  # commands that parse their own arguments


def _load_plugins(argv: list[str]) -> None:
    """Import the plugins before the parser is built: its help lists their regimes and data sets."""
    early = argparse.ArgumentParser(prog="ltbench", add_help=False)
    _plugin_option(early)
    load_plugins(early.parse_known_args(argv)[0].plugin)


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the command; without one, run."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HANDED_OVER:  # before our parser, which would read their options as its own
        return HANDED_OVER[argv[0]](argv[1:])
    try:
        _load_plugins(argv)
    except PluginError as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command and argv[0] != args.command:  # run's defaults would silently replace options before it
        parser.error(f"options before the command {args.command!r} are not read: put them after it")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.list or args.command == "list":
        print(describe_settings())
        return 0
    return run_command(parser, args, argv)
