"""Training and test transforms of the references: minimalist crop, RandomResizedCrop+flip, plain and 5-crop test."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import get_dimensions, resized_crop

BICUBIC = InterpolationMode.BICUBIC
MIN_SCALE = 0.08


def minimalist_min_scale(epoch: int, num_epochs: int, floor: float = MIN_SCALE) -> float:
    """Convex schedule floor + (1 - floor)(1 - sqrt(1 - t^2)), t = epoch/(E-1); E=1 stays at t=0."""
    t = epoch / max(num_epochs - 1, 1)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"epoch {epoch} outside 0..{num_epochs - 1}")
    return floor + (1.0 - floor) * (1.0 - math.sqrt(1.0 - t * t))


class MinimalistCrop(torch.nn.Module):
    """LIFT+'s minimalist augmentation: a square random crop of area fraction U[min_scale, 1], no flip.

    The area fraction is clipped to the largest square that fits; call `set_epoch` before each epoch.
    """

    def __init__(self, size: int, num_epochs: int):
        super().__init__()
        self.size = size
        self.num_epochs = num_epochs
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def min_scale(self) -> float:
        return minimalist_min_scale(self.epoch, self.num_epochs)

    def crop_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        area = height * width
        square = min(height, width) ** 2 / area
        low, high = min(self.min_scale, square), min(1.0, square)
        target = area * torch.empty(1).uniform_(low, high).item()
        side = int(round(math.sqrt(target)))
        top = int(torch.randint(0, height - side + 1, size=(1,)).item())
        left = int(torch.randint(0, width - side + 1, size=(1,)).item())
        return top, left, side, side

    def forward(self, img):
        _, height, width = get_dimensions(img)
        top, left, h, w = self.crop_params(height, width)
        return resized_crop(img, top, left, h, w, [self.size, self.size], BICUBIC, antialias=True)


def _to_normalised_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    return [T.ToTensor(), T.Normalize(mean, std)]


def train_transform(kind: str, size: int, num_epochs: int, mean, std) -> T.Compose:
    """minimalist (LIFT+), rrc_flip (LIFT-plus `mda False`: bicubic RandomResizedCrop + flip), rrc_flip_bilinear
    (the LIFT repository: torchvision's default bilinear), none (resize + centre crop)."""
    if kind == "minimalist":
        crop = [MinimalistCrop(size, num_epochs)]
    elif kind in ("rrc_flip", "rrc_flip_bilinear"):
        interpolation = BICUBIC if kind == "rrc_flip" else InterpolationMode.BILINEAR
        crop = [T.RandomResizedCrop(size, interpolation=interpolation), T.RandomHorizontalFlip()]
    elif kind == "none":
        crop = [T.Resize(size, interpolation=BICUBIC), T.CenterCrop(size)]
    else:
        raise ValueError(f"unknown augmentation {kind!r}; valid: minimalist, rrc_flip, rrc_flip_bilinear, none")
    return T.Compose(crop + _to_normalised_tensor(mean, std))


def test_transform(size: int, mean, std, tte: bool = False) -> T.Compose:
    """Plain: resize size*8/7 (256 for 224), centre crop. TTE: resize size+24/224·size (248), five crops stacked."""
    if not tte:
        return T.Compose([T.Resize(size + size // 7, interpolation=BICUBIC), T.CenterCrop(size)]
                         + _to_normalised_tensor(mean, std))
    return T.Compose([
        T.Resize(size + round(size * 24 / 224), interpolation=BICUBIC),
        T.FiveCrop(size),
        StackCrops(T.Compose(_to_normalised_tensor(mean, std))),
    ])


class StackCrops(torch.nn.Module):
    """Turn a tuple of crops into one crops×C×H×W tensor (a picklable class, unlike a lambda)."""

    def __init__(self, per_crop):
        super().__init__()
        self.per_crop = per_crop

    def forward(self, crops):
        return torch.stack([self.per_crop(c) for c in crops])


def set_epoch(transform, epoch: int) -> None:
    """Advance every epoch-scheduled transform inside `transform`."""
    for t in getattr(transform, "transforms", [transform]):
        if hasattr(t, "set_epoch"):
            t.set_epoch(epoch)
