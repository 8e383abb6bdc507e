"""V-PETL Bench's performance-parameter trade-off (PPT): one score for accuracy and trainable parameters together.

Xin et al., "V-PETL Bench: A Unified Visual Parameter-Efficient Transfer Learning Benchmark", NeurIPS 2024
Datasets and Benchmarks (github.com/synbol/Parameter-Efficient-Transfer-Learning-Benchmark):

    PPT = M · exp(−log10(P / C + 1)),   C = 10^7

M is the method's performance as a fraction (top-1 accuracy / 100), P its trainable parameters. V-PETL Bench counts
the tuned backbone's parameters, not the task head's: its linear probe has "0 M" and PPT = M; its full fine-tuning
of ViT-B/16 85.8 M. The constants reproduce its published tables (VTAB Adapter: 71.44 %, 0.16 M → 0.71; LST:
71.70 %, 2.38 M → 0.65; COCO Partial-1: 49.2 %, 12.60 M → 0.35).
"""
from __future__ import annotations

import math

PPT_NORMALISER = 1e7  # C: V-PETL Bench's normalisation of the parameter count


def ppt(top1: float | None, trainable_params: float | None, normaliser: float = PPT_NORMALISER) -> float | None:
    """PPT of a top-1 accuracy in percent and a trainable-parameter count (the backbone's, classifier not
    counted); None where either is missing, so that no score is made up."""
    if top1 is None or trainable_params is None or math.isnan(top1) or math.isnan(trainable_params):
        return None
    if trainable_params < 0:
        raise ValueError(f"a parameter count cannot be negative, got {trainable_params}")
    return top1 / 100.0 * math.exp(-math.log10(trainable_params / normaliser + 1.0))
