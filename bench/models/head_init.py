"""Head inits from training images (LIFT-plus trainer.py:349-372): class means, or a balanced logistic regression.

The features are those of the tower with the regime's modules already attached (random SSF or prompts change
them), so `initialise_head` runs after `regime.build`. The head's bias, if any, stays 0 as in the reference.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.base import ImageSource, LongTailData
from bench.data.loading import make_loader
from bench.data.transforms import resize_mode, train_transform
from bench.evaluation import extract_features
from bench.training.context import JobContext
from bench.training.recipe import Recipe

from .backbone import input_mean_std, input_size
from .heads import IMAGE_INITS, LinearClassifier, LongTailModel

PER_CLASS = 100  # LIFT-plus DownSampler(n_max=100)


class SubsetImages(ImageSource):
    """The images of `source` at `indices`, in that order."""

    def __init__(self, source: ImageSource, indices: np.ndarray):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = source.labels[self.indices]

    def keys(self) -> list[str]:
        keys = self.source.keys()
        return [keys[i] for i in self.indices]

    def load(self, index: int):
        return self.source.load(int(self.indices[index]))


def per_class_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Ascending indices of min(per_class, n_c) images of every class c, drawn at random from `seed`."""
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    by_class = shuffled[np.argsort(labels[shuffled], kind="stable")]  # grouped by class, random within each
    starts = np.concatenate([[0], np.cumsum(np.bincount(labels))])
    rank = np.arange(len(labels)) - starts[labels[by_class]]
    return np.sort(by_class[rank < per_class])


def init_features(model: LongTailModel, data: LongTailData, ctx: JobContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Features N×D (fp32, no autocast, as the reference) and labels of the job's seeded per-class subset of the
    training split, seen through the plain transform: resize to the input size (the recipe's `interpolation`:
    LIFT-plus's bicubic, LIFT's bilinear) and centre crop, as uint8 crops normalised (and with `resize_on_device`
    resized) on the device by extract_features."""
    subset = SubsetImages(data.train, per_class_subset(data.train.labels, PER_CLASS, ctx.job.seed))
    size = input_size(model.visual)
    transform = train_transform("none", size, 1, *input_mean_std(model.visual), uint8=True,
                                resize=resize_mode(ctx.job.runtime), interpolation=ctx.job.recipe.interpolation)
    loader = make_loader(subset, transform,
                         ctx.job.runtime.eval_batch_size, shuffle=False, seed=ctx.job.seed, workers=ctx.workers,
                         pin_memory=ctx.device.type == "cuda")
    features, labels = extract_features(model, loader, ctx.device, contextlib.nullcontext)
    return features[:, 0], labels


def class_mean_weights(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """K×D mean feature of each class (every class has a training image: LongTailData checks it)."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype).index_add_(0, labels, features)
    return sums / torch.bincount(labels, minlength=num_classes).unsqueeze(1).to(features.dtype)


def probe_weights(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """K×D coefficients of scikit-learn's LogisticRegression(lbfgs, 100 iterations, L2 with C=1 (its default),
    balanced class weights); with two classes its single row w becomes the softmax-equivalent [-w, w]."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise ImportError("classifier_init=linear_probing needs scikit-learn: pip install scikit-learn") from exc
    probe = LogisticRegression(solver="lbfgs", max_iter=100, class_weight="balanced")
    coef = torch.from_numpy(probe.fit(features.numpy(), labels.numpy()).coef_).float()
    return torch.cat([-coef, coef]) if len(coef) == 1 else coef


def initialise_head(model: LongTailModel, data: LongTailData, recipe: Recipe, ctx: JobContext) -> None:
    """Overwrite the head's class weights with the normalised class means or probe weights of the training
    subset when the recipe's init asks for it; nothing otherwise (also for a head without class weights)."""
    if recipe.classifier_init not in IMAGE_INITS or not isinstance(model.head, LinearClassifier):
        return
    features, labels = init_features(model, data, ctx)
    weights = (class_mean_weights(features, labels, data.num_classes) if recipe.classifier_init == "class_mean"
               else probe_weights(features, labels))
    with torch.no_grad():
        model.head.weight.copy_(F.normalize(weights, dim=-1))
