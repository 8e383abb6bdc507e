"""Linear CKA between a tuned image tower and its pretrained tower, block by block, on one split.

Both towers see each batch in turn (one joint pass, forward hooks on their blocks, `tower_blocks`); each block's
output is pooled to one vector per image and only the float64 cross products of the two towers' vectors are kept
(bench.statistics.CrossProducts, on the device), never an N×D matrix per block. Pooled vector: the CLS token (the
first: open_clip's ViTs and timm's with a class token; VPT puts its prompts after it), the token mean for a ViT
without one, the spatial mean for a ResNet block.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from bench.data.loading import batch_normaliser, to_device
from bench.features import PretrainedTower, split_loader
from bench.models.towers import ViTTower, is_resnet, tower_blocks
from bench.statistics import CrossProducts
from bench.training.context import JobContext
from bench.training.precision import autocast_factory


def block_pooling(visual: torch.nn.Module) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    """What a block's output is pooled to (its name, and the function), one vector per image."""
    if is_resnet(visual):
        return "spatial mean", lambda out: out.mean(dim=(2, 3))
    tokens = 1 if getattr(getattr(visual, "transformer", None), "batch_first", True) else 0  # open_clip: L×N×D
    if isinstance(visual, ViTTower) and visual.num_prefix == 0:
        return "token mean", lambda out: out.mean(dim=tokens)
    return "CLS token", lambda out: out.select(tokens, 0)


def exposed_blocks(visual: torch.nn.Module) -> torch.nn.Module | None:
    """The tower's blocks, or None for a tower that does not expose them."""
    try:
        return tower_blocks(visual)
    except (AttributeError, NotImplementedError):
        return None


@torch.no_grad()
def block_cka(tuned, pretrained, data, split: str, ctx: JobContext) -> dict | None:
    """Per block the linear CKA of the tuned tower's pooled output against the pretrained tower's on `split`
    (single crop, the test transform); None when a tower does not expose blocks, or not the same number.
    `pretrained`: a model, or a PretrainedTower, built here (its time counted in `seconds`)."""
    start = time.perf_counter()
    pretrained = pretrained() if isinstance(pretrained, PretrainedTower) else pretrained
    blocks = [exposed_blocks(model.visual) for model in (tuned, pretrained)]
    if any(b is None for b in blocks) or len(blocks[0]) != len(blocks[1]):
        return None
    token, pool = block_pooling(tuned.visual)
    pooled: tuple[dict, dict] = ({}, {})

    def keep(outputs: dict, index: int):
        def hook(_module, _inputs, out):
            out = out[0] if isinstance(out, tuple) else out
            outputs[index] = pool(out).to(torch.float64, copy=True)
        return hook

    handles = [block.register_forward_hook(keep(outputs, index))
               for outputs, tower in zip(pooled, blocks) for index, block in enumerate(tower)]
    sums = [CrossProducts() for _ in blocks[0]]
    loader = split_loader(tuned, data, split, "test", ctx)
    normalise, autocast = batch_normaliser(loader), autocast_factory(ctx.device, ctx.precision)
    tuned.eval()
    pretrained.eval()
    try:
        for images, _ in loader:
            images = to_device(images, ctx.device, normalise)
            with autocast():
                tuned.features(images)
                pretrained.features(images)
            for index, cross in enumerate(sums):
                cross.add(pooled[0].pop(index), pooled[1].pop(index))
    finally:
        for handle in handles:
            handle.remove()
    values = [cross.cka() for cross in sums]
    return {"split": split, "pooled": token, "cka": [None if math.isnan(v) else v for v in values],
            "seconds": time.perf_counter() - start}
