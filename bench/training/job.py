"""A job: one data set × regime × seed with its fully resolved config, and the runtime options that don't change results."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from dataclasses import dataclass, field
from typing import Any, Optional

from bench.fields import identity_fields
from bench.tracking.base import TrackingOptions

from .recipe import Recipe


@dataclass(frozen=True)
class Runtime:
    """Where and how a job runs; none of it changes the numbers beyond float precision, so it is not in the id."""

    data_root: str = "data"
    download: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    loader_workers: Optional[int] = None  # DataLoader processes per job; None: 0 on CPU, min(8, cores) on GPU
    # (the CLI always passes its own count, see bench.cli.loader_workers)
    micro_batch_size: Optional[int] = None  # gradient accumulation: batch split into micro-batches of this size
    eval_batch_size: int = 256
    train_eval: bool = True  # also measure training-set accuracy
    run_dir: Optional[str] = None  # where epoch checkpoints, shared caches and logs go (None: nowhere)
    progress: bool = False  # a progress bar over the job's steps (on a terminal)
    progress_position: int = 0  # its line, when several jobs run at once
    force: bool = False  # --force: rerun a job even when another process finished it meanwhile
    resize_on_device: bool = False  # loader workers only decode and crop; the resize runs on the device, as
    # Pillow's (bench.data.transforms.DeviceResize, bit for bit); off: the references' PIL path in the workers
    plugins: tuple[str, ...] = ()  # --plugin files (absolute paths) and modules, imported wherever the job unpickles
    tracking: TrackingOptions = field(default_factory=TrackingOptions)  # --log: experiment trackers of each job
    save_weights: Optional[str] = None  # --save-weights: trainable | all, written to weights/<id>.safetensors
    save_features: bool = False  # features/<id>.safetensors: what a posthoc child job (bench.derived) reads


@dataclass(frozen=True)
class Derivation:
    """What makes a job a derived one (bench.derived): a remedy applied to finished parent jobs, not a training
    run. `variant` names its form (wise; uniform_soup | greedy_soup; tau_norm | logit_adjust | crt | lws), `value`
    its α or τ where it has one (named by `value_name`), `settings` every other resolved value that changes its
    numbers."""

    method: str  # the remedy: wise | soup | posthoc
    variant: str
    parents: tuple[str, ...]  # job ids, in the run folder of the derived job
    value_name: str = ""  # alpha | tau
    value: Optional[float] = None
    settings: tuple[tuple[str, Any], ...] = ()

    def record(self) -> dict:
        return {"method": self.method, "variant": self.variant, "value_name": self.value_name, "value": self.value,
                "settings": dict(self.settings), "parents": list(self.parents)}

    @property
    def name(self) -> str:
        """wise(alpha=0.5), greedy_soup, logit_adjust(tau=1): how labels and report rows name it."""
        return self.variant if self.value is None else f"{self.variant}({self.value_name}={self.value:g})"


@dataclass(frozen=True)
class Job:
    dataset: str
    dataset_config: Any  # the data set's frozen config dataclass
    regime: str
    recipe: Recipe
    model: str
    pretrained: str
    seed: int
    quick_gelu: bool = False  # the tower's activation (QuickGELU for OpenAI weights; bench.models.uses_quick_gelu)
    data_fingerprint: str = ""  # the split and the image content under it (bench.data.check_images)
    protocol: str = "reference"  # bench.protocols
    runtime: Runtime = field(default_factory=Runtime, compare=False)
    hparam_sources: dict = field(default_factory=dict, compare=False)  # recipe field -> where its value came from
    plugins: tuple[tuple[str, str], ...] = ()  # (name, sha256) of the plugins its regime, data set or loss come from
    derived: Optional[Derivation] = None  # a remedy on finished parent jobs (bench.derived); None: a training run

    def config(self) -> dict:
        """Everything that determines the result (the job id hashes exactly this): changed data, another
        activation, another recipe or an edited plugin is another job, never a reused result. Jobs without a
        plugin part have no "plugins" key (and jobs that train no "derived" key), so their ids are what they were
        before those existed."""
        return {
            "dataset": self.dataset,
            "dataset_config": {"type": type(self.dataset_config).__name__,
                               **identity_fields(self.dataset_config)},
            "data_fingerprint": self.data_fingerprint,
            "regime": self.regime,
            "recipe": identity_fields(self.recipe),
            "protocol": self.protocol,
            "model": self.model,
            "pretrained": self.pretrained,
            "quick_gelu": self.quick_gelu,
            "seed": self.seed,
            **({"plugins": [{"name": name, "sha256": sha} for name, sha in self.plugins]} if self.plugins else {}),
            **({"derived": self.derived.record()} if self.derived else {}),
        }

    @property
    def job_id(self) -> str:
        canonical = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        base = f"{self.dataset}/{self.regime}/seed{self.seed}"
        return f"{base}/{self.derived.name}" if self.derived else base

    def __reduce__(self):
        """Pickled with its plugin specs ahead of its fields, which may hold a plugin's classes (a recipe, a data
        set config): unpickling imports the plugins first, in whichever process or node runs the job."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _unpickled, (self.runtime.plugins, pickle.dumps(fields))


def _unpickled(plugins: tuple[str, ...], fields: bytes) -> Job:
    from bench.plugins import load_plugins

    load_plugins(plugins)
    return Job(**pickle.loads(fields))
