import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the network
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per test worker (and its subprocesses): the workers share
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the cores instead of oversubscribing them

import dataclasses  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.data import dataset_config  # noqa: E402
from bench.models import TINY_MODEL, Backbone, create_clip  # noqa: E402
from bench.models.backbone import backbone_of  # noqa: E402
from bench.training import Job, Runtime  # noqa: E402
from regimes import REGIMES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# The files that take longest on 2 cores (pytest --durations=0), longest first. pytest-xdist hands whole files
# to its workers in collection order, so these start first and the short files fill in around them; left to
# itself (largest test count first) it started them last, and one worker ran on alone for a minute.
SLOWEST_FILES = (
    "tests/reports/test_report.py",
    "tests/scheduler/test_faults.py",
    "tests/scheduler/test_slurm.py",
    "tests/scheduler/test_ray.py",
    "tests/regimes/test_regimes.py",
    "tests/scheduler/test_execution.py",
    "tests/test_cli.py",
    "tests/reports/test_load.py",
    "tests/test_bad_inputs.py",
    "tests/test_fixed_run.py",
    "tests/derived/test_derived.py",
    "tests/remedies/test_wise.py",
)


def pytest_collection_modifyitems(items):
    """The slowest files first, the rest in their usual order (a stable sort)."""
    rank = {name: index for index, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def lt_splits() -> Path:
    """The standard split files shipped beside the checkout in ../shared/data/lt_splits."""
    path = Path(os.environ.get("LTBENCH_SHARED", REPO.parent / "shared")) / "data" / "lt_splits"
    if not path.is_dir():
        pytest.skip(f"standard split files not found at {path}")
    return path


def unfinished_checkpoint(run: Path) -> bool:
    """An epoch checkpoint of a job that has no result yet: what a kill drill waits for. (A finished job's
    checkpoint lingers a moment after its JSON is written; killing the run then leaves nothing to resume.)"""
    done = {path.stem for path in (run / "jobs").glob("*.json")}
    return any(path.stem not in done for path in (run / "checkpoints").glob("*.pt"))


def wait_for(condition, seconds: float) -> None:
    """Poll `condition` every 50 ms until it holds; a drill whose moment never comes fails, it does not hang."""
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def tiny_backbone(classnames=(), text_tower: bool = False, seed: int = 0) -> Backbone:
    """The tiny model's random-weight Backbone (the same draw for a seed), its text tower kept with `text_tower`."""
    torch.manual_seed(seed)
    return backbone_of(create_clip(TINY_MODEL, "none"), TINY_MODEL, list(classnames), text_tower=text_tower)


def make_job(regime="linear_probe", dataset="synthetic_lt", seed=0, data_overrides=None, runtime=None,
             **recipe_changes) -> Job:
    """A tiny-model job on a data set, with recipe fields changed as given."""
    recipe = REGIMES.get(regime).recipe
    data_config = dataset_config(dataset, data_overrides)
    recipe = dataclasses.replace(recipe, **recipe_changes)
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
    return Job(dataset, data_config, regime, recipe, "ltbench-tiny", "none", seed,
               runtime=runtime or Runtime(device="cpu"))
