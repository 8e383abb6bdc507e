"""The command line's SLURM options (`--slurm-*`): parsed and bounded at parse time, then turned into
SlurmSettings; given without `--backend slurm` they are refused, not ignored."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench.fields import MAX_PROCESSES, number

from .slurm_backend import CLUSTERS, DEFAULT_TIME_MIN, GPU_TASK_CPUS, SUBMITIT_ARRAY_PARALLELISM, SlurmSettings

MAX_TIME_MIN = 366 * 24 * 60
MAX_ARRAY_PARALLELISM = 100_000
TIME = re.compile(r"(?:(?P<days>\d+)-)?(?P<hours>\d+):(?P<minutes>\d\d):(?P<seconds>\d\d)")
MEM = re.compile(r"(?P<amount>\d+)(?P<unit>[KMGT]B?)?", re.IGNORECASE)
SBATCH_KEY = re.compile(r"[a-z][a-z0-9_-]+")
OWN_FLAGS = {"partition": "--slurm-partition", "account": "--slurm-account", "time": "--slurm-time",
             "gpus-per-node": "--slurm-gpus-per-job", "gres": "--slurm-gpus-per-job",
             "cpus-per-task": "--slurm-cpus-per-job", "mem": "--slurm-mem", "array": "--slurm-array-parallelism",
             "output": "--slurm-folder", "error": "--slurm-folder"}
SUBMITIT_FLAGS = ("signal", "open-mode", "job-name", "wckey")  # what requeueing and submitit's logs rely on
OTHER_BACKENDS = ("gpus", "jobs_per_gpu", "workers", "ray_address", "ray_gpus_per_job", "ray_cpus_per_job")


def slurm_time(text: str) -> int:
    """Minutes, or SLURM's [D-]HH:MM:SS, as whole minutes (seconds round up), 1 minute to 366 days."""
    text = text.strip()
    if text.isdigit():
        minutes = int(text)
    else:
        match = TIME.fullmatch(text)
        if not match or int(match["minutes"]) > 59 or int(match["seconds"]) > 59 or (
                match["days"] and int(match["hours"]) > 23):
            raise argparse.ArgumentTypeError(f"expected minutes or [D-]HH:MM:SS (e.g. 240, 04:00:00 or "
                                             f"2-00:00:00), got {text!r}")
        seconds = (((int(match["days"] or 0) * 24 + int(match["hours"])) * 60 + int(match["minutes"])) * 60
                   + int(match["seconds"]))
        minutes = -(-seconds // 60)
    if not 1 <= minutes <= MAX_TIME_MIN:
        raise argparse.ArgumentTypeError(f"must be at least 1 minute and at most 366 days, got {text!r}")
    return minutes


def slurm_mem(text: str) -> str:
    """SLURM's --mem: an amount with an optional unit K, M (the default), G or T."""
    match = MEM.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected an amount like 64G, 500M or 1T (0: all of a node's memory), "
                                         f"got {text!r}")
    return f"{match['amount']}{(match['unit'] or '').upper()}"


def slurm_gpus(text: str) -> int:
    if text.strip() not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"a job trains on one GPU: 1, or 0 for CPU tasks, got {text!r}")
    return int(text)


def sbatch_flag(text: str) -> tuple[str, str | bool]:
    """KEY=VALUE (or a bare KEY for a flag without a value) -> an sbatch long option and its value."""
    key, equals, value = text.partition("=")
    key = key.strip().removeprefix("--").replace("_", "-")
    if not SBATCH_KEY.fullmatch(key) or (equals and not value.strip()):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with an sbatch long option name as KEY (e.g. "
                                         f"qos=high, constraint=a100, exclusive), got {text!r}")
    if key in OWN_FLAGS:
        raise argparse.ArgumentTypeError(f"{key}: use {OWN_FLAGS[key]}, which sets it")
    if key in SUBMITIT_FLAGS:
        raise argparse.ArgumentTypeError(f"{key}: set by submitit for its logs and requeueing; leave it out")
    return key, value.strip() if equals else True


def add_slurm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("slurm", "--backend slurm: one SLURM array task per job, through submitit "
                                               "(pip install -e '.[slurm]')")
    group.add_argument("--slurm-cluster", choices=CLUSTERS,
                       help="slurm (default): sbatch on this login node; local: the same tasks as processes on "
                            "this machine (submitit's LocalExecutor), a dry run of a SLURM study")
    group.add_argument("--slurm-partition", help="the partition (sbatch --partition; default: the cluster's)")
    group.add_argument("--slurm-account", help="the account charged (sbatch --account)")
    group.add_argument("--slurm-time", type=slurm_time, metavar="TIME",
                       help=f"each task's time limit: minutes or [D-]HH:MM:SS (default: {DEFAULT_TIME_MIN // 60} "
                            f"hours); a task near it is requeued and resumes from its epoch checkpoint")
    group.add_argument("--slurm-gpus-per-job", type=slurm_gpus,
                       help="GPUs per task: 1 (default; 0 with --device cpu), or 0 for CPU tasks")
    group.add_argument("--slurm-cpus-per-job", type=number(int, 1, MAX_PROCESSES),
                       help=f"CPUs per task (default: {GPU_TASK_CPUS} for GPU tasks, which use them as DataLoader "
                            f"workers; 1 for CPU tasks)")
    group.add_argument("--slurm-mem", type=slurm_mem, help="memory per task, e.g. 64G (default: the partition's)")
    group.add_argument("--slurm-array-parallelism", type=number(int, 1, MAX_ARRAY_PARALLELISM), metavar="N",
                       help=f"tasks running at once (default: {SUBMITIT_ARRAY_PARALLELISM}, submitit's; 1 with "
                            f"--slurm-cluster local)")
    group.add_argument("--slurm-sbatch", type=sbatch_flag, action="append", metavar="KEY=VALUE",
                       help="an extra sbatch flag, e.g. qos=high or constraint=a100 (a bare KEY for a flag "
                            "without a value); repeatable")
    group.add_argument("--slurm-folder", help="submitit's pickles and task logs, %%j the SLURM job id "
                                              "(default: OUT/slurm/%%j); on a file system the nodes share")


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser, dest: str) -> bool:
    return getattr(args, dest) != parser.get_default(dest)


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def slurm_settings(args: argparse.Namespace) -> SlurmSettings:
    """The tasks' settings from the options, the defaults resolved; a --device that contradicts the tasks'
    GPUs is refused."""
    gpus = args.slurm_gpus_per_job
    if gpus is None:
        gpus = 0 if args.device == "cpu" else 1
    if args.device == "cpu" and gpus:
        raise ValueError("--device cpu runs on the CPU but --slurm-gpus-per-job 1 asks each task for a GPU; drop "
                         "one of them")
    if args.device.startswith("cuda") and not gpus:
        raise ValueError(f"--device {args.device} needs a GPU but --slurm-gpus-per-job 0 asks for none; drop one "
                         f"of them")
    if args.device.startswith("cuda:"):
        raise ValueError(f"--device {args.device}: each SLURM task sees only its own GPU; use --device cuda (or "
                         f"auto)")
    keys = [key for key, _ in args.slurm_sbatch or ()]
    twice = next((key for i, key in enumerate(keys) if key in keys[:i]), None)
    if twice:
        raise ValueError(f"--slurm-sbatch {twice} is given twice; keep one")
    return SlurmSettings(
        folder=args.slurm_folder or str(Path(args.out).resolve() / "slurm" / "%j"),
        cluster=args.slurm_cluster or "slurm", partition=args.slurm_partition, account=args.slurm_account,
        time_min=args.slurm_time or DEFAULT_TIME_MIN, gpus_per_job=gpus,
        cpus_per_job=args.slurm_cpus_per_job or (GPU_TASK_CPUS if gpus else 1), mem=args.slurm_mem,
        array_parallelism=args.slurm_array_parallelism, sbatch=tuple(args.slurm_sbatch or ()))


def check_backend_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--slurm-* options without --backend slurm, and the other backends' options with it, would be ignored:
    refused instead, naming the option."""
    slurm = [dest for dest in vars(args) if dest.startswith("slurm_") and getattr(args, dest) is not None]
    if args.backend != "slurm" and slurm:
        raise ValueError(f"{_option(slurm[0])} is an option of --backend slurm: add --backend slurm or drop it")
    if args.backend == "slurm":
        other = [dest for dest in OTHER_BACKENDS if _given(args, parser, dest)]
        if other:
            raise ValueError(f"{_option(other[0])} is not an option of --backend slurm (each task gets its GPUs "
                             f"from --slurm-gpus-per-job, and --slurm-array-parallelism sets how many run at once); "
                             f"drop it")
