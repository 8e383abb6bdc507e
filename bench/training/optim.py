"""The optimiser primitives shared by the training loop and the performance benchmark."""
from __future__ import annotations

import torch


def make_optimiser(params, recipe, device: torch.device, kernel: str = "auto") -> torch.optim.SGD:
    """SGD with momentum. `kernel`: "fused" (one CUDA kernel for every tensor), "foreach" (batched), "loop"
    (one tensor at a time, the benchmark's plain baseline) or "auto" (fused on GPU, torch's default on CPU).
    They compute the same update."""
    if kernel == "auto":
        kernel = "fused" if device.type == "cuda" else "default"
    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False},
               "default": {}}
    if kernel not in options:
        raise ValueError(f"unknown optimiser kernel {kernel!r}; valid: auto, {', '.join(options)}")
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           **options[kernel])


def train_step(model, optimiser, criterion, images, labels, micro: int, autocast, scaler) -> tuple[torch.Tensor, int]:
    """One optimiser step on a batch, accumulated exactly over micro-batches; (batch loss, correct predictions)."""
    optimiser.zero_grad(set_to_none=True)
    batch_loss = torch.zeros((), device=images.device)
    correct = 0
    for x, y in zip(images.split(micro), labels.split(micro)):
        with autocast():
            logits = model(x)
        # mean loss of the micro-batch weighted by its share of the batch: the sum equals the batch mean
        loss = criterion(logits.float(), y) * (len(y) / len(labels))
        (scaler.scale(loss) if scaler else loss).backward()
        batch_loss += loss.detach()
        correct += int((logits.argmax(dim=1) == y).sum())
    return batch_loss, correct


def optimiser_step(optimiser, scaler) -> None:
    if scaler:
        scaler.step(optimiser)
        scaler.update()
    else:
        optimiser.step()
