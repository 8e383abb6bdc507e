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


# LIFT-plus's `mda_func` s(t): the share of the way from the floor to 1 that the smallest crop area has gone at
# t = epoch/(E-1); LIFT+ uses convex (small crops most of the time, the whole image at the end)
MDA_SCHEDULES = {
    "min": lambda t: 0.0,
    "max": lambda t: 1.0,
    "linear": lambda t: t,
    "convex": lambda t: 1.0 - math.sqrt(1.0 - t * t),
    "concave": lambda t: math.sqrt(1.0 - (1.0 - t) ** 2),
}


def minimalist_min_scale(epoch: int, num_epochs: int, schedule: str = "convex", floor: float = MIN_SCALE) -> float:
    """floor + (1 - floor)·s(t), t = epoch/(E-1), s one of MDA_SCHEDULES; E=1 stays at t=0."""
    if schedule not in MDA_SCHEDULES:
        raise ValueError(f"unknown mda_func {schedule!r}; valid: {', '.join(MDA_SCHEDULES)}")
    t = epoch / max(num_epochs - 1, 1)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"epoch {epoch} outside 0..{num_epochs - 1}")
    return floor + (1.0 - floor) * MDA_SCHEDULES[schedule](t)


class MinimalistCrop(torch.nn.Module):
    """LIFT+'s minimalist augmentation: a square random crop of area fraction U[min_scale, 1], no flip.

    The area fraction is clipped to the largest square that fits; `schedule` (an MDA_SCHEDULES name) moves
    min_scale over the epochs; call `set_epoch` before each epoch.
    """

    def __init__(self, size: int, num_epochs: int, schedule: str = "convex"):
        super().__init__()
        minimalist_min_scale(0, num_epochs, schedule)  # an unknown schedule fails here, not in the first epoch
        self.size = size
        self.num_epochs = num_epochs
        self.schedule = schedule
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def min_scale(self) -> float:
        return minimalist_min_scale(self.epoch, self.num_epochs, self.schedule)

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


def train_transform(kind: str, size: int, num_epochs: int, mean, std, mda_func: str = "convex") -> T.Compose:
    """minimalist (LIFT+, on the schedule `mda_func`), rrc_flip (LIFT-plus `mda False`: bicubic RandomResizedCrop
    + flip), rrc_flip_bilinear (the LIFT repository: torchvision's default bilinear), none (resize + centre crop)."""
    if kind == "minimalist":
        crop = [MinimalistCrop(size, num_epochs, mda_func)]
    elif kind in ("rrc_flip", "rrc_flip_bilinear"):
        interpolation = BICUBIC if kind == "rrc_flip" else InterpolationMode.BILINEAR
        crop = [T.RandomResizedCrop(size, interpolation=interpolation), T.RandomHorizontalFlip()]
    elif kind == "none":
        crop = [T.Resize(size, interpolation=BICUBIC), T.CenterCrop(size)]
    else:
        raise ValueError(f"unknown augmentation {kind!r}; valid: minimalist, rrc_flip, rrc_flip_bilinear, none")
    return T.Compose(crop + _to_normalised_tensor(mean, std))


def resize_for_test(size: int, tte: bool, expand: int | None = None) -> int:
    """LIFT-plus's test resize: size + expand pixels; unset, 24 with TTE (248 for 224), size // 7 without (256).

    LIFT-plus's 24 px is meant for CLIP's 224 px and up. Below 224 px (the embedded demo model) the TTE default
    scales with the size, round(24 * size / 224), so each of the five crops still covers ~90% of the image.
    """
    if expand is None:
        expand = (24 if size >= 224 else round(24 * size / 224)) if tte else size // 7
    return size + expand


def test_transform(size: int, mean, std, tte: bool = False, expand: int | None = None) -> T.Compose:
    """Resize to `resize_for_test` (bicubic), then a centre crop, or with TTE the five crops stacked."""
    resize = T.Resize(resize_for_test(size, tte, expand), interpolation=BICUBIC)
    if not tte:
        return T.Compose([resize, T.CenterCrop(size)] + _to_normalised_tensor(mean, std))
    return T.Compose([
        resize,
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
