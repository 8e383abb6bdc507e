"""A job's trained parameters: `weights/<id>.safetensors`, written after training with --save-weights, and
`load_job(run_dir, job_id)`, which rebuilds the fine-tuned model from it for inference.

The file holds tensors by their names in the model's state_dict:
- content `trainable`: the tensors that trained (requires_grad), nothing else: a PEFT method's few, full
  fine-tuning's whole image tower and head; never optimiser state. The frozen rest is rebuilt from the pretrained
  weights (or, for random weights, the job's seed), as the epoch checkpoints do;
- content `all`: the model's whole state_dict, frozen tensors and buffers too: a copy that holds every number of
  the fine-tuned model, at the size of the model;
and, under `initial.`, the classifier's tensors and every attached module's (a regime's injected tensors: LoRA,
adapters, prompts, SSF, CoOp's context; `bench.models.sites.attached_parameters`) as initialised before the first
step: with the pretrained backbone that is rebuilt, the initial model, WiSE-FT's α = 0 end (bench.remedies.wise).
A file written before the attached modules' initial values were kept has the classifier's only. The metadata
(strings) names the job, its regime, recipe, backbone and classes, and a SHA-256 of the tensors, which `load_job`
checks: a damaged file is refused, never loaded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

import bench
from bench.io import atomic_file
from bench.messages import first_line
from bench.models.sites import attached_parameters
from bench.registry import get_regime
from bench.results import RunStore

log = logging.getLogger(__name__)

FORMAT = "ltbench.weights/1"
CONTENTS = ("trainable", "all")  # --save-weights; the first is the default
INITIAL = "initial."  # prefix of the classifier's and the attached modules' tensors as initialised
SATISFIES = {"trainable": ("trainable", "all"), "all": ("all",)}  # content asked -> saved contents that hold it


class WeightsFileError(ValueError):
    """A job's model cannot be rebuilt: no such job, no weights file, a damaged one; the message names the fix."""


@dataclass(frozen=True)
class Classes:
    """What `Regime.build` reads of a data set: its classes. A trained model is rebuilt without its images."""

    classnames: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def initial_tensors(model, classifier_names: list[str]) -> dict[str, torch.Tensor]:
    """Copies (named `initial.<name>`) of the classifier tensors `classifier_names` and of every attached module's
    trainable tensors as they are now: after the head's init, before training. The rest of what trains starts
    from the pretrained weights, which are rebuilt."""
    params = dict(model.named_parameters())
    names = [*classifier_names, *attached_parameters(model)]
    return {INITIAL + name: params[name].detach().cpu().clone() for name in names}


def nothing_to_save(regime: str) -> dict:
    """The result's `weights` record of a regime that trains no tensor."""
    return {"file": None, "content": None,
            "reason": f"{regime} trains no tensor: nothing to save; bench.load_job rebuilds it from its config"}


def save_weights(model, job, recipe, classnames: list[str], initial: dict[str, torch.Tensor],
                 store: RunStore) -> dict:
    """Write the job's weights file atomically (content: job.runtime.save_weights) and return the result's
    `weights` record: file, content, bytes, tensor counts and SHA-256. The size is logged before writing."""
    content = job.runtime.save_weights
    trainable = [name for name, _ in model.trainable_parameters()]
    source = model.state_dict() if content == "all" else dict(model.trainable_parameters())
    tensors = {name: value.detach().cpu().clone().contiguous() for name, value in source.items()}
    digest = tensor_digest({**tensors, **initial})
    metadata = {
        "format": FORMAT, "job_id": job.job_id, "label": job.label, "content": content, "regime": job.regime,
        "recipe": json.dumps(dataclasses.asdict(recipe)), "config": json.dumps(job.config(), sort_keys=True),
        "model": job.model, "pretrained": job.pretrained, "quick_gelu": json.dumps(job.quick_gelu),
        "seed": str(job.seed), "dataset": job.dataset, "num_classes": str(len(classnames)),
        "classnames": json.dumps(list(classnames)), "trainable": json.dumps(trainable),
        "initial": json.dumps(sorted(initial)), "sha256": digest, "ltbench_version": bench.__version__,
    }
    from safetensors.torch import save

    path = store.weights_path(job.job_id)
    size = sum(t.numel() * t.element_size() for t in (*tensors.values(), *initial.values()))
    log.info("%s: saving %d %s tensors and %d initial tensors (%s) to %s", job.label, len(tensors),
             content, len(initial), megabytes(size), path)
    data = save({**tensors, **initial}, metadata=metadata)
    with atomic_file(path) as fh:
        fh.write(data)
    return {"file": path.relative_to(store.run_dir).as_posix(), "content": content, "bytes": len(data),
            "tensors": len(tensors), "initial_tensors": len(initial), "sha256": digest}


def _saved(store: RunStore, job_id: str, content: str) -> bool:
    """The job's result records a weights file holding `content` (or nothing to save), with its size intact."""
    result = store.load(job_id, full=False)
    record = getattr(result, "weights", None)
    if not isinstance(record, dict):
        return False
    if record.get("file") is None:
        return record.get("reason") is not None
    try:
        size = (store.run_dir / record["file"]).stat().st_size
    except (OSError, TypeError):
        return False
    return record.get("content") in SATISFIES[content] and size == record.get("bytes")


def unsaved_jobs(jobs, store: RunStore, content: str) -> list:
    """The finished jobs of `jobs` that trained and have no intact weights file of `content`."""
    return [job for job in jobs if get_regime(job.regime).trains and store.is_finished(job.job_id)
            and not _saved(store, job.job_id, content)]


def check_saved_weights(jobs, store: RunStore, content: str) -> None:
    """Refuse (ValueError) --save-weights on a run whose finished jobs have no such weights: they are not retrained
    behind the user's back (on a GPU a retrained job's numbers may differ from its recorded ones)."""
    missing = unsaved_jobs(jobs, store, content)
    if missing:
        names = ", ".join(job.label for job in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ValueError(f"--save-weights {content}: {len(missing)} finished jobs of this run have no such weights "
                         f"({names}); add --force to retrain every job of the command and save its weights, or "
                         f"use another --out")


def weights_summary(store: RunStore, job_ids) -> str:
    """The run's weights files in one line: how many, their total size, where."""
    sizes = [path.stat().st_size for path in map(store.weights_path, job_ids) if path.is_file()]
    return f"weights: {len(sizes)} files, {megabytes(sum(sizes))} in {store.run_dir / 'weights'}"


def read_tensor_file(path: Path, job_id: str, sha256: str | None, *, file_format: str, what: str, fix: str,
                     error: type[ValueError]) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of one of a job's safetensors files (its weights, its cached features), checked:
    readable, of this job and `file_format`, intact (the SHA-256 of its metadata and, given, of its result). Any
    problem raises `error` naming `what` ("the weights file") and the `fix`."""
    from safetensors import safe_open

    if not path.is_file():
        raise error(f"{what} {path} is missing; {fix}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except Exception as exc:  # safetensors raises several kinds of error on a damaged file
        raise error(f"{what} {path} is damaged ({type(exc).__name__}: {first_line(str(exc))}); {fix}") from exc
    if metadata.get("format") != file_format or metadata.get("job_id") != job_id:
        raise error(f"{what} {path} is not job {job_id}'s (format {metadata.get('format')}, job "
                    f"{metadata.get('job_id')}); {fix}")
    digest = tensor_digest(tensors)
    if digest != metadata.get("sha256") or (sha256 is not None and digest != sha256):
        raise error(f"{what} {path} is damaged (its tensors' SHA-256 is not the one recorded); {fix}")
    return tensors, metadata


def read_weights(path: Path, job_id: str, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a weights file, checked: readable, of this job, intact (SHA-256)."""
    return read_tensor_file(path, job_id, sha256, file_format=FORMAT, what="the weights file",
                            fix="rerun its command with --save-weights --force", error=WeightsFileError)


def load_tensors(model, tensors: dict[str, torch.Tensor], content: str) -> None:
    """Load the saved tensors (less `initial.`) into the rebuilt model, strictly: the file must hold exactly the
    model's trainable tensors (`trainable`) or its whole state_dict (`all`), with their shapes."""
    saved = {name: value for name, value in tensors.items() if not name.startswith(INITIAL)}
    expected = set(model.state_dict()) if content == "all" else {name for name, _ in model.trainable_parameters()}
    unknown, missing = sorted(set(saved) - expected), sorted(expected - set(saved))
    if unknown or missing:
        raise WeightsFileError(f"the weights do not fit the rebuilt model: {len(missing)} of its {content} tensors "
                               f"missing ({', '.join(missing[:3])}), {len(unknown)} unknown "
                               f"({', '.join(unknown[:3])})")
    try:
        model.load_state_dict(saved, strict=False)
    except RuntimeError as exc:  # a shape that differs
        raise WeightsFileError(f"the weights do not fit the rebuilt model: {first_line(str(exc))}") from exc


def finished_result(store: RunStore, job_id: str):
    """The job's result; WeightsFileError when there is no such job, its result cannot be read or it did not
    finish (there is no trained model)."""
    result = store.load(job_id)
    if result is None:
        if not store.job_path(job_id).is_file():
            raise WeightsFileError(f"no job {job_id} in {store.run_dir}: its jobs are the ids in "
                                   f"{store.jobs_dir} (and in results.csv)")
        raise WeightsFileError(f"the result {store.job_path(job_id)} (or a file it refers to) cannot be read")
    if result.status != "ok":
        raise WeightsFileError(f"job {result.label} ({job_id}) did not finish ({result.status}): there is no "
                               f"trained model; rerun its command")
    return result


def saved_tensors(store: RunStore, result) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a finished job's weights file, checked; refused (WeightsFileError, naming the
    fix) when it ran without --save-weights or the file is missing or damaged."""
    record = result.weights or {}
    if not record.get("file"):
        raise WeightsFileError(f"job {result.label} ({result.job_id}) has no weights file: it ran without "
                               f"--save-weights; rerun its command with --save-weights --force")
    return read_weights(store.run_dir / record["file"], result.job_id, record.get("sha256"))


class Rebuilt(NamedTuple):
    """A finished job's model as `regime.build` makes it, before any saved tensor is loaded (backbone pretrained,
    head and attached modules at a fresh init, on the device), its weights file's tensors and metadata, checked
    (None and {} for a regime that trains nothing), and its result."""

    model: torch.nn.Module
    tensors: dict[str, torch.Tensor] | None
    metadata: dict
    result: object


def rebuild(run_dir: str | Path, job_id: str, device: str | torch.device = "cpu") -> Rebuilt:
    """Rebuild a finished job's model as in training (same model, pretrained weights, activation; random weights
    from the job's seed; the regime's modules attached) and read its weights file: what `load_job` loads and
    bench.remedies.wise interpolates. Refused (WeightsFileError, naming the fix) when the job is unknown, did not
    finish, ran without --save-weights, or its file is damaged."""
    from bench.models.backbone import load_backbone
    from bench.training.precision import seed_everything

    store = RunStore(run_dir)
    result = finished_result(store, job_id)
    plugins = (result.runtime or {}).get("plugins")
    if plugins:  # its regime or data set may come from one
        from bench.plugins import load_plugins

        load_plugins(tuple(plugins))
    config = result.config
    regime = get_regime(config["regime"])
    try:
        recipe = type(regime.recipe)(**config["recipe"])
    except (TypeError, ValueError) as exc:
        raise WeightsFileError(f"job {job_id}'s recipe does not fit this ltbench's {regime.name} ({exc})") from exc
    tensors, metadata = saved_tensors(store, result) if regime.trains else (None, {})
    classnames = tuple(result.dataset["classnames"])
    seed_everything(config["seed"])  # random weights: the same draw as the job's backbone
    backbone = load_backbone(config["model"], config["pretrained"], list(classnames), device, seed=config["seed"],
                             quick_gelu=config["quick_gelu"], text_tower=regime.uses_text_tower(recipe),
                             text_embeddings=regime.needs_text_embeddings(recipe))
    recipe = regime.resolve(recipe, len(classnames), backbone)
    model = regime.build(backbone, Classes(classnames), recipe).to(device)
    return Rebuilt(model, tensors, metadata, result)


def load_job(run_dir: str | Path, job_id: str, device: str | torch.device = "cpu"):
    """The fine-tuned model of a finished job, in eval mode on `device`: the backbone rebuilt as in training (same
    model, pretrained weights, activation; random weights from the job's seed), the regime's modules attached,
    the saved tensors loaded. A regime that trains nothing (zero_shot) needs no weights file."""
    model, tensors, metadata, _ = rebuild(run_dir, job_id, device)
    if tensors is not None:
        load_tensors(model, tensors, metadata["content"])
    return model.eval()
