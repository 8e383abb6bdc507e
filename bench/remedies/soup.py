"""Model soups (Wortsman et al., ICML 2022, "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time"): the uniform soup, the mean of the ingredients' weights, and the
greedy soup, which adds ingredients in decreasing order of their own held-out score and keeps each one only if the
soup's held-out score does not drop. Only fine-tunings of one initialisation can be souped."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from bench.fields import check_fields, setting

ONE_INITIALISATION = "only fine-tunings of one initialisation can be souped"


@dataclass(frozen=True)
class SoupRecipe:
    """The soups of a `soup` derived job, set with `--set soup.FIELD=VALUE`."""

    greedy: bool = setting(True, help="besides the uniform soup (the mean of every ingredient), the greedy soup: "
                                      "ingredients by decreasing validation score, each kept if the soup's "
                                      "validation score does not drop (Wortsman et al.'s Recipe 1)")

    def __post_init__(self):
        check_fields(self)


def _mismatch(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> str | None:
    """How `other`'s tensor names, shapes or dtypes differ from `reference`'s, or None."""
    missing, extra = sorted(set(reference) - set(other)), sorted(set(other) - set(reference))
    if missing or extra:
        return "; ".join(part for part in (f"it lacks {', '.join(missing[:3])}" if missing else "",
                                           f"it has {', '.join(extra[:3])} besides" if extra else "") if part)
    for name in sorted(reference):
        a, b = reference[name], other[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"its {name} is {b.dtype} {tuple(b.shape)}, not {a.dtype} {tuple(a.shape)}"
    return None


def average_tensors(ingredients: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform soup: each tensor's mean over the ingredients (summed in float64, returned in its dtype, on
    the first ingredient's device). Ingredients whose names, shapes or dtypes differ are refused (ValueError), and
    so is a tensor that cannot be averaged (not floating point) and differs between them."""
    if not ingredients:
        raise ValueError("a soup needs at least one ingredient")
    first = ingredients[0]
    for number, other in enumerate(ingredients[1:], 1):
        problem = _mismatch(first, other)
        if problem:
            raise ValueError(f"soup ingredient {number} does not fit ingredient 0: {problem}; only fine-tunings that "
                             f"train the same tensors can be souped")
    soup = {}
    for name, tensor in first.items():
        if not tensor.is_floating_point():
            if any(not torch.equal(tensor, other[name].to(tensor.device)) for other in ingredients[1:]):
                raise ValueError(f"soup ingredients differ in {name}, a {tensor.dtype} tensor, which cannot be "
                                 f"averaged")
            soup[name] = tensor.clone()
            continue
        total = torch.zeros(tensor.shape, dtype=torch.float64, device=tensor.device)
        for ingredient in ingredients:
            total += ingredient[name].to(device=tensor.device, dtype=torch.float64)
        soup[name] = (total / len(ingredients)).to(tensor.dtype)
    return soup


def same_initialisation(initials: list[dict[str, torch.Tensor]]) -> str | None:
    """None when the ingredients' initial tensors are all equal (to the bit), else a message naming the first
    ingredient and tensor that differ."""
    first = initials[0] if initials else {}
    for number, other in enumerate(initials[1:], 1):
        problem = _mismatch(first, other)
        if problem:
            return f"soup ingredient {number}'s initial tensors are not ingredient 0's ({problem}): " \
                   f"{ONE_INITIALISATION}"
        differs = next((name for name in sorted(first) if not torch.equal(first[name].cpu(), other[name].cpu())), None)
        if differs is not None:
            return f"soup ingredient {number} starts from another {differs} than ingredient 0: {ONE_INITIALISATION}"
    return None


def _finite(score: float, what: str) -> float:
    score = float(score)
    if not math.isfinite(score):
        raise ValueError(f"the greedy soup cannot order or compare by a score of {score} ({what})")
    return score


def greedy_soup(order_scores: list[float], held_out: Callable[[list[int]], float]) -> tuple[list[int], list[dict]]:
    """Wortsman et al.'s Recipe 1: the ingredients in decreasing order of their own held-out score (`order_scores`,
    ties in index order); the best starts the soup, with its own score; each next one is added when
    `held_out(chosen + [it])`, the score of the soup of those ingredients, is >= the soup's score so far (Recipe 1
    keeps ties; the released code's `>` drops them). Returns the chosen indices in the order added and a trace:
    per ingredient considered, its index, own score, the candidate soup's score and whether it was kept."""
    if not order_scores:
        raise ValueError("a soup needs at least one ingredient")
    scores = [_finite(score, f"ingredient {index}'s own") for index, score in enumerate(order_scores)]
    order = sorted(range(len(scores)), key=lambda index: -scores[index])
    chosen, best = [order[0]], scores[order[0]]
    trace = [{"ingredient": order[0], "score": best, "soup_score": best, "kept": True}]
    for index in order[1:]:
        soup_score = _finite(held_out([*chosen, index]), f"the soup with ingredient {index}")
        kept = soup_score >= best
        trace.append({"ingredient": index, "score": scores[index], "soup_score": soup_score, "kept": kept})
        if kept:
            chosen.append(index)
            best = soup_score
    return chosen, trace
