"""Post-hoc long-tail corrections of a finished job's head on its cached features (bench.remedies.cached):
τ-normalisation, cRT and LWS (Kang et al., ICLR 2020, "Decoupling representation and classifier for long-tailed
recognition") and post-hoc logit adjustment (Menon et al., ICLR 2021, "Long-tail learning via logit adjustment").

Each returns a new head, evaluated by `bench.evaluation.top_predictions(head, features, device)` as a job's head.
cRT and LWS train with plain cross-entropy, SGD with momentum and a per-epoch cosine schedule (the regimes'
optimiser, bench.training.optim) on class-balanced samples of the frozen training features. They draw from a
generator of their own (the global one is left as it was), so a seed gives the same head on the CPU.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal, Optional, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.fields import MAX_BATCH, MAX_EPOCHS, check_fields, field_error, setting
from bench.models.heads import CosineClassifier, L2NormClassifier, LinearClassifier, ZeroShotHead
from bench.training.optim import make_optimiser

from .cached import head_kind, head_size

log = logging.getLogger(__name__)

Method = Literal["tau_norm", "logit_adjust", "crt", "lws"]
METHODS: tuple[str, ...] = get_args(Method)


def normalises_weights(head: nn.Module) -> bool:
    """Whether the head's logits already use unit-norm class weights (cosine, l2norm, layernorm, zero_shot), so
    that τ-normalisation changes nothing."""
    return isinstance(head, (CosineClassifier, L2NormClassifier, ZeroShotHead))


def tau_normalised(head: nn.Module, tau: float) -> LinearClassifier:
    """Kang et al.'s τ-normalised classifier: rows w_j / ‖w_j‖^τ of a linear head, its bias dropped as in their
    tau_norm.py (τ = 0: the head's weights, τ = 1: unit-norm rows). A zero row stays zero."""
    if normalises_weights(head):
        raise ValueError(f"τ-normalisation changes nothing on a {head_kind(head)} head: its logits already use "
                         f"unit-norm class weights")
    if type(head) is not LinearClassifier:
        raise ValueError(f"τ-normalisation applies to a linear classifier, not to a {type(head).__name__}")
    weight = head.weight.detach()
    norms = weight.norm(dim=1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
    normalised = torch.nn.utils.skip_init(LinearClassifier, head.in_features, head.out_features, bias=False,
                                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        normalised.weight.copy_(weight / norms.pow(tau))
    return normalised.eval()


class LogitAdjusted(nn.Module):
    """The head's logits plus fixed per-class offsets: f_y(x) − τ·log π_y."""

    def __init__(self, head: nn.Module, offsets: torch.Tensor):
        super().__init__()
        self.head = head
        self.register_buffer("offsets", offsets)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        return logits + self.offsets.to(logits.dtype)


def logit_adjusted(head: nn.Module, class_counts, tau: float) -> LogitAdjusted:
    """Menon et al.'s post-hoc logit adjustment of `head` (used as it is, not copied): argmax_y f_y(x) − τ·log π_y
    with π the training prior, counts / total (τ = 0: the head's own logits, to the bit). A class without training
    images (π = 0) is refused: its offset −τ·log 0 = +∞ would make it every image's prediction, and any finite
    floor (the reference code's 1e-12) is an arbitrary margin in its favour."""
    counts = np.asarray(class_counts, dtype=np.float64)
    num_classes = head_size(head)[1]
    if counts.shape != (num_classes,) or (counts < 0).any():
        raise ValueError(f"class counts must be {num_classes} numbers >= 0 (the head's classes), got shape "
                         f"{counts.shape}")
    empty = np.flatnonzero(counts == 0).tolist()
    if empty:
        raise ValueError(f"post-hoc logit adjustment needs at least one training image per class (log π); class(es) "
                         f"{empty[:10]} have none")
    offsets = torch.as_tensor(-tau * np.log(counts / counts.sum()), dtype=torch.float32)
    return LogitAdjusted(head, offsets.to(_device(head))).eval()


class ClassScaled(nn.Module):
    """LWS: the head's logits times one learnable scale per class, s_j·f_j(x) (s = 1 at first). As in Kang et al.'s
    code the scale multiplies the whole logit, a linear head's bias too."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head
        self.scales = nn.Parameter(torch.ones(head_size(head)[1], device=_device(head)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        return logits * self.scales.to(logits.dtype)


def _device(module: nn.Module) -> torch.device:
    return next(iter([*module.parameters(), *module.buffers()])).device


def class_balanced_indices(labels: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """`num_samples` training indices drawn with replacement, class-balanced as in Kang et al.: a class uniformly
    at random among those with images, then an image uniformly within it."""
    labels = labels.cpu()
    counts = torch.bincount(labels)
    present = torch.nonzero(counts).flatten()
    by_class = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    classes = present[torch.randint(len(present), (num_samples,), generator=generator)]
    within = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * counts[classes]).long()
    return by_class[starts[classes] + torch.minimum(within, counts[classes] - 1)]


def _check_training_data(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    num_classes = head_size(head)[1]
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels) or not len(labels):
        raise ValueError(f"{name} trains on N×D training features and N labels, got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"{name}: training labels fall outside 0..{num_classes - 1} (the head's classes)")


def _train_balanced(module: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float,
                    batch_size: int, weight_decay: float, momentum: float, seed: int, name: str) -> nn.Module:
    """Train `module`'s trainable tensors with cross-entropy on class-balanced batches of the frozen features,
    on the module's device (the features stay where they are; each batch is indexed and moved). An epoch draws
    as many samples as there are training images, i.i.d. (Kang et al.'s ClassAwareSampler draws the largest
    class's count × K, cycling through shuffled classes and images). Returns the module in eval mode."""
    from bench.training.loop import NonFiniteLossError

    device = _device(module)
    generator = torch.Generator().manual_seed(seed)
    settings = SimpleNamespace(lr=lr, momentum=momentum, weight_decay=weight_decay)
    optimiser = make_optimiser([p for p in module.parameters() if p.requires_grad], settings, device)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(epochs, 1))
    labels = labels.cpu()
    module.train()
    for epoch in range(epochs):
        current_lr = optimiser.param_groups[0]["lr"]
        total = torch.zeros((), device=device)
        samples = class_balanced_indices(labels, len(labels), generator)
        for batch in samples.split(batch_size):
            x = features[batch.to(features.device)].to(device, non_blocking=True)
            y = labels[batch].to(device, non_blocking=True)
            loss = F.cross_entropy(module(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach() * len(batch)
        mean = float(total) / len(samples)
        if not math.isfinite(mean):
            raise NonFiniteLossError(f"{name}: loss is {mean} at epoch {epoch + 1} (lr {current_lr:g}); lower its "
                                     f"learning rate")
        log.info("%s epoch %d/%d class-balanced loss %.4f lr %.3g", name, epoch + 1, epochs, mean, current_lr)
        schedule.step()
    return module.eval()


def train_crt(head: nn.Module, train_features: torch.Tensor, train_labels: torch.Tensor, *, epochs: int, lr: float,
              batch_size: int, weight_decay: float, momentum: float, seed: int) -> nn.Module:
    """Kang et al.'s classifier re-training: a copy of the head (on its device), re-initialised with its own
    `reset_parameters` (the references' random init, drawn from `seed`), trained on the frozen features with
    class-balanced sampling. The head given is not changed."""
    _check_training_data(head, train_features, train_labels, "cRT")
    if not list(head.parameters()):
        raise ValueError(f"cRT re-initialises and re-trains the classifier's weights, and a {head_kind(head)} head "
                         f"has none (its class embeddings are the text tower's); use lws or logit_adjust")
    device = _device(head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = copy.deepcopy(head).cpu()
        fresh.reset_parameters()
    fresh = fresh.to(device).requires_grad_(True)
    return _train_balanced(fresh, train_features, train_labels, epochs=epochs, lr=lr, batch_size=batch_size,
                           weight_decay=weight_decay, momentum=momentum, seed=seed, name="cRT")


def train_lws(head: nn.Module, train_features: torch.Tensor, train_labels: torch.Tensor, *, epochs: int, lr: float,
              batch_size: int, weight_decay: float, momentum: float, seed: int) -> ClassScaled:
    """Kang et al.'s learnable weight scaling: a frozen copy of the head times one scale per class (1 at first),
    only the scales trained, with class-balanced sampling. The head given is not changed."""
    _check_training_data(head, train_features, train_labels, "LWS")
    scaled = ClassScaled(copy.deepcopy(head).requires_grad_(False))
    return _train_balanced(scaled, train_features, train_labels, epochs=epochs, lr=lr, batch_size=batch_size,
                           weight_decay=weight_decay, momentum=momentum, seed=seed, name="LWS")


TAU_NORM_TAUS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ADJUST_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
TAUS = {"tau_norm_taus": "tau_norm", "adjust_taus": "logit_adjust"}  # a τ list -> the method it is for
TUPLES = ("methods", *TAUS)
USED_BY = {**{name: (method,) for name, method in TAUS.items()},  # a setting -> the methods that use it
           **dict.fromkeys(("epochs", "lr", "batch_size", "weight_decay", "momentum"), ("crt", "lws"))}


@dataclass(frozen=True)
class PosthocRecipe:
    """The corrections of a `posthoc` derived job, set with `--set posthoc.FIELD=VALUE` (lists as 0,0.5,1)."""

    methods: tuple[Method, ...] = setting(
        METHODS, help="the corrections, each a row of its own: tau_norm (Kang et al.'s τ-normalised linear head), "
                      "logit_adjust (Menon et al.'s post-hoc logit adjustment), crt (the head re-initialised and "
                      "re-trained with class-balanced sampling), lws (a learned scale per class, class-balanced)")
    tau_norm_taus: tuple[float, ...] = setting(
        TAU_NORM_TAUS, low=0, help="τ of tau_norm's w_j / |w_j|^τ, a row each (Kang et al.: τ in [0, 1]; their "
                                   "script sweeps 0..2); 0: the head's weights without its bias, 1: unit-norm rows")
    adjust_taus: tuple[float, ...] = setting(
        ADJUST_TAUS, low=0, help="τ of logit_adjust's f_y(x) - τ·log π_y, a row each (Menon et al.: τ = 1, or tuned "
                                 "on held-out data); 0: the parent's own logits (a model trained with the la loss "
                                 "is already adjusted by its la_tau)")
    epochs: int = setting(10, low=1, high=MAX_EPOCHS,
                          help="epochs of crt and lws on the cached training features (Kang et al.'s cRT: 10); an "
                               "epoch draws as many class-balanced samples as there are training images")
    lr: Optional[float] = setting(None, low=0, low_open=True,
                                  help="SGD learning rate of crt and lws, cosine-annealed per epoch; None: the "
                                       "parent's")
    batch_size: Optional[int] = setting(None, low=1, high=MAX_BATCH,
                                        help="samples per step of crt and lws; None: the parent's")
    weight_decay: Optional[float] = setting(None, low=0, help="SGD weight decay of crt and lws; None: the parent's")
    momentum: float = setting(0.9, low=0, high=1, high_open=True, help="SGD momentum of crt and lws")

    def __post_init__(self):
        for name in TUPLES:  # hashable, as every recipe must be (a config read back from JSON has lists)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_fields(self)
        for name in TAUS:
            problem = next(filter(None, (field_error(self, name, tau) for tau in getattr(self, name))), None)
            if problem:
                raise ValueError(f"{name} {problem}")
        unknown = [method for method in self.methods if method not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods {'lists ' + repr(unknown[0]) if unknown else 'is empty'}: list one or more of "
                             f"{', '.join(METHODS)}")
        for name in TUPLES:
            values = getattr(self, name)
            twice = next((value for value in values if values.count(value) > 1), None)
            if twice is not None:
                raise ValueError(f"{name} lists {twice} twice; list each once")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, users in USED_BY.items():
            if getattr(self, name) != defaults[name] and not set(users) & set(self.methods):
                raise ValueError(f"{name} is set but methods has no {' or '.join(users)}, which it is for; add "
                                 f"{users[0]} to methods or leave {name} unset")
        for name, method in TAUS.items():
            if method in self.methods and not getattr(self, name):
                raise ValueError(f"{name} is empty: list at least one τ, or drop {method} from methods")
