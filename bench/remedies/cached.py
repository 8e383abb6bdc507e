"""A parent job's cached features: one safetensors file with its train/test(/val) features, labels and head, from
which the post-hoc corrections (bench.remedies.posthoc) run without the image tower.

Tensors `<split>.features` (train N×D, one crop; test and val N×C×D, C crops, 1 without test-time ensembling),
`<split>.labels` (N) and `head.<name>` (the head's state_dict: parameters and buffers). The metadata (strings)
names the format, the job, the head's kind and its non-tensor options, and a SHA-256 of the tensors
(bench.weights.tensor_digest), which `load_cached_features` checks: a damaged file is refused, never used.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import bench
from bench.io import atomic_file
from bench.messages import first_line
from bench.models.heads import (CosineClassifier, L2NormClassifier, LayerNormClassifier, LinearClassifier,
                                TextClassifier, ZeroShotHead)
from bench.weights import megabytes, read_tensor_file, tensor_digest

log = logging.getLogger(__name__)

FORMAT = "ltbench.features/1"
SPLITS = ("train", "test", "val")  # train and test always, val where the data set has one
HEAD = "head."  # prefix of the head's tensors
HEAD_KINDS = {"linear": LinearClassifier, "cosine": CosineClassifier, "l2norm": L2NormClassifier,
              "layernorm": LayerNormClassifier, "zero_shot": ZeroShotHead}
HEAD_OPTIONS = {"cosine": ("scale",), "zero_shot": ("logit_scale",)}  # the kinds' non-tensor settings
FIX = "rerun the parent job with --force"


class CachedFeaturesError(ValueError):
    """A cached-features file cannot be used: missing, damaged, another job's or format; the message names the fix."""


@dataclass
class CachedFeatures:
    """A parent job's features and labels by split (train features N×D, test and val N×C×D) and its head,
    rebuilt as the same class with the same options and tensors, in eval mode, on the CPU."""

    job_id: str
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    head: nn.Module
    head_kind: str


def head_kind(head: nn.Module) -> str:
    """The key of a head that can be cached (HEAD_KINDS); ValueError naming why another cannot."""
    if isinstance(head, TextClassifier):
        raise ValueError("the text-encoder classifier (classifier=text) cannot be cached as features and a head: "
                         "its logits come from the text encoder on the class prompts, not from a matrix on the "
                         "image features")
    kind = next((kind for kind, cls in HEAD_KINDS.items() if type(head) is cls), None)
    if kind is None:
        raise ValueError(f"a {type(head).__name__} head cannot be cached: the heads that can are "
                         f"{', '.join(HEAD_KINDS)}")
    return kind


def head_size(head: nn.Module) -> tuple[int, int]:
    """(feature dimension D, classes K) of a head that can be cached."""
    if head_kind(head) == "zero_shot":
        return head.proj.shape[0], head.text.shape[0]
    return head.in_features, head.out_features


def _check_split(split: str, features: torch.Tensor, labels: torch.Tensor, dim: int, num_classes: int) -> None:
    ndim = 2 if split == "train" else 3
    if features.ndim != ndim or features.shape[-1] != dim or features.dtype != torch.float32:
        raise ValueError(f"{split} features must be float32 {'N×D' if ndim == 2 else 'N×C×D'} with D = {dim} (the "
                         f"head's), got {features.dtype} {tuple(features.shape)}")
    if labels.ndim != 1 or labels.dtype != torch.int64 or len(labels) != len(features):
        raise ValueError(f"{split} labels must be int64 of length {len(features)}, got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{split} labels fall outside 0..{num_classes - 1} (the head's classes)")


def save_cached_features(path: Path, job_id: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                         head: nn.Module) -> dict:
    """Write the features and the head atomically; return the record {"bytes", "sha256", "splits": {split:
    [N, C, D]}} (train as [N, 1, D]). ValueError for a head that cannot be cached (the text-encoder classifier)
    or splits that do not fit it."""
    kind = head_kind(head)
    dim, num_classes = head_size(head)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not {"train", "test"} <= set(splits):
        raise ValueError(f"cached features need the splits train and test (and val where there is one), got "
                         f"{', '.join(sorted(splits))}")
    tensors = {}
    for split in (split for split in SPLITS if split in splits):
        features, labels = splits[split]
        _check_split(split, features, labels, dim, num_classes)
        tensors[f"{split}.features"] = features.detach().cpu().contiguous()
        tensors[f"{split}.labels"] = labels.detach().cpu().contiguous()
    tensors.update({HEAD + name: value.detach().cpu().clone().contiguous()
                    for name, value in head.state_dict().items()})
    shapes = {split: [len(tensors[f"{split}.features"]), *([1] if split == "train" else []),
                      *tensors[f"{split}.features"].shape[1:]] for split in SPLITS if split in splits}
    digest = tensor_digest(tensors)
    metadata = {"format": FORMAT, "job_id": job_id, "head_kind": kind,
                "head_options": json.dumps({name: getattr(head, name) for name in HEAD_OPTIONS.get(kind, ())}),
                "splits": json.dumps(shapes), "sha256": digest, "ltbench_version": bench.__version__}
    from safetensors.torch import save

    size = sum(t.numel() * t.element_size() for t in tensors.values())
    log.info("%s: caching the features of %s and its %s head (%s) in %s", job_id,
             ", ".join(f"{split} {n}×{c}×{d}" for split, (n, c, d) in shapes.items()), kind, megabytes(size), path)
    data = save(tensors, metadata=metadata)
    with atomic_file(path) as fh:
        fh.write(data)
    return {"bytes": len(data), "sha256": digest, "splits": shapes}


def _read(path: Path, job_id: str, sha256: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of the file, checked: readable, of this job and format, intact (SHA-256)."""
    return read_tensor_file(path, job_id, sha256, file_format=FORMAT, what="the cached features file", fix=FIX,
                            error=CachedFeaturesError)


def _rebuild_head(kind: str, options: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    """The head of `kind` with its options and saved tensors (dtype too); building it draws nothing from the
    global random generator."""
    with torch.random.fork_rng(devices=[]):  # the heads' constructors draw a random init, overwritten here
        if kind == "zero_shot":
            head = ZeroShotHead(state["proj"], state["text"], **options)
        elif kind == "linear":
            head = LinearClassifier(state["weight"].shape[1], state["weight"].shape[0], bias="bias" in state)
        else:
            head = HEAD_KINDS[kind](state["weight"].shape[1], state["weight"].shape[0], **options)
    head.load_state_dict(state, strict=True, assign=True)
    return head.eval()


def load_cached_features(path: str | Path, job_id: str, sha256: str | None = None) -> CachedFeatures:
    """The parent job's cached features and head; CachedFeaturesError for a missing, damaged, other-job or
    other-format file (and `sha256`, where given, must be the one recorded in the parent's result)."""
    path = Path(path)
    tensors, metadata = _read(path, job_id, sha256)
    try:
        kind = metadata["head_kind"]
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}")
        options = json.loads(metadata["head_options"])
        state = {name[len(HEAD):]: value for name, value in tensors.items() if name.startswith(HEAD)}
        head = _rebuild_head(kind, options, state)
        splits = {split: (tensors[f"{split}.features"], tensors[f"{split}.labels"])
                  for split in SPLITS if f"{split}.features" in tensors}
        if not {"train", "test"} <= set(splits):
            raise ValueError(f"splits {', '.join(splits)}: train and test are needed")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a head or a split that does not fit
        raise CachedFeaturesError(f"the cached features {path} cannot be read as {FORMAT} "
                                  f"({type(exc).__name__}: {first_line(str(exc))}); {FIX}") from exc
    return CachedFeatures(job_id=job_id, splits=splits, head=head, head_kind=kind)
