"""Contrastive pre-training of the bundled `ltbench-demo` CLIP on a balanced source distribution.

The source covers all 1000 shape/pattern/colour concepts in the `clean` and `web` styles with captions
"a photo of a red striped star."; the demo's target style is never seen, so zero-shot transfer to
`demo_lt` is good but imperfect, as CLIP's is on CIFAR-100. Every batch is freshly rendered from one
seeded generator, so a run is reproducible and sees no image twice.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from bench.data.shapes import CONCEPTS, concept_name, latin_square_concepts, render
from bench.models.backbone import DEMO_MODEL, PROMPT, bundled_weights_path, input_mean_std, tokenizer_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 1600
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    web_fraction: float = 0.5  # the rest is the clean style
    seed: int = 0
    threads: int = 2


def _normaliser(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.tensor(x).view(1, 3, 1, 1) for x in input_mean_std(model.visual))


def _pixels(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W×3 images as the normalised N×3×H×W input of the image tower."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255) - mean) / std


def _batch(rng: np.random.Generator, config: PretrainConfig, mean: torch.Tensor, std: torch.Tensor):
    concepts = rng.integers(0, CONCEPTS, config.batch_size)
    web = rng.random(config.batch_size) < config.web_fraction
    images = np.empty((config.batch_size, 32, 32, 3), dtype=np.uint8)
    for style, chosen in (("web", web), ("clean", ~web)):
        if chosen.any():
            images[chosen] = render(concepts[chosen], style, rng)
    return _pixels(images, mean, std), torch.from_numpy(concepts)


def _lr(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.lr * 0.5 * (1 + math.cos(math.pi * t))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only (not biases, norms, embeddings, the temperature), as in CLIP."""
    decay, rest = [], []
    for name, param in model.named_parameters():
        (decay if param.ndim >= 2 and "embedding" not in name and "class_embedding" not in name else rest).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def zero_shot_accuracy(model: torch.nn.Module, concepts: list[int], style: str, per_concept: int = 20,
                       seed: int = 1) -> float:
    """Top-1 accuracy of prompt matching among `concepts` on freshly rendered images of one style."""
    model.eval()
    tokenizer = tokenizer_for(DEMO_MODEL)
    text = F.normalize(model.encode_text(tokenizer([PROMPT.format(concept_name(c)) for c in concepts])), dim=-1)
    labels = np.repeat(np.arange(len(concepts)), per_concept)
    images = render(np.asarray(concepts)[labels], style, np.random.default_rng(seed))
    pixels = _pixels(images, *_normaliser(model))
    feats = torch.cat([F.normalize(model.encode_image(chunk), dim=-1) for chunk in pixels.split(500)])
    return float(((feats @ text.T).argmax(1).numpy() == labels).mean())


def pretrain(config: PretrainConfig) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = open_clip.create_model(DEMO_MODEL, pretrained=None).float()
    tokenizer = tokenizer_for(DEMO_MODEL)
    captions = tokenizer([PROMPT.format(concept_name(c)) for c in range(CONCEPTS)])
    mean, std = _normaliser(model)
    optimiser = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98),
                                  eps=1e-6)
    start = time.time()
    model.train()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, config)
        pixels, concepts = _batch(rng, config, mean, std)
        image = F.normalize(model.encode_image(pixels), dim=-1)
        text = F.normalize(model.encode_text(captions[concepts]), dim=-1)
        logits = model.logit_scale.exp() * image @ text.T
        same = (concepts[:, None] == concepts[None, :]).float()  # repeated captions are all positives
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pre-training loss is {loss.item()} at step {step}; lower --lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0 or step == config.steps - 1:
            log.info("step %d/%d  loss %.3f  %.0f img/s", step, config.steps, loss.item(),
                     (step + 1) * config.batch_size / (time.time() - start))
    minutes = (time.time() - start) / 60
    targets = latin_square_concepts()
    summary = {"minutes": round(minutes, 2),
               **{f"zero_shot_{style}": round(zero_shot_accuracy(model, targets, style), 4)
                  for style in ("clean", "web", "target")}}
    return model.eval(), summary


def save_weights(model: torch.nn.Module, path: Path, config: PretrainConfig, summary: dict) -> None:
    """fp16 safetensors (half the size, no pickle), with the config and results as metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {"model": DEMO_MODEL, "config": json.dumps(asdict(config)), "summary": json.dumps(summary),
                "torch": torch.__version__, "open_clip": open_clip.__version__}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def default_output() -> Path:
    return bundled_weights_path(DEMO_MODEL)
