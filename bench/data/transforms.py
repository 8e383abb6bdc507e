"""Training and test transforms of the references: minimalist crop, RandomResizedCrop+flip, plain and 5-crop test.

The references end every transform in ToTensor + Normalize, run in the DataLoader workers. With `uint8=True` the
workers stop at the crop's uint8 pixels (C×H×W, a quarter of the bytes through the worker pipes) and the
transform's `normalise` (`DeviceNormalise`) turns a batch into the same floats after `.to(device)`: bit for bit
ToTensor's `.float().div(255)` then Normalize's `.sub(mean).div(std)`, in that order, in float32.

With `resize="device"` (opt-in, `Runtime.resize_on_device`) the workers go one step shorter: they decode, draw
the crop (and flip) with the same random calls in the same order as the PIL path, and hand the uint8 crop region
at its own size (training crops) or the decoded image (the deterministic views), packed into one flat tensor per
batch (`PackedImages`, the transform's `collate`). The transform's `normalise` (`DeviceResize`) then resizes each
on the device as Pillow does, bit for bit by default (Pillow's integer filter weights as float64 matmuls, its
rounding and clipping after each pass, its pass order), crops (test, TTE, "none"), stacks and applies
DeviceNormalise: the model sees the references' floats. `method="interpolate"` (float32 `interpolate(...,
antialias=True)` per pass) is within 1-2 levels on a few pixels, for devices with slow float64.
"""
from __future__ import annotations

import collections
import functools
import math
from typing import Sequence

import numpy as np
import PIL
import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
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


class DeviceNormalise(torch.nn.Module):
    """ToTensor's scaling and Normalize applied to a uint8 batch (...×C×H×W) where it lies, the device after
    `.to(device)`: x.float().div(255), then .sub(mean).div(std) with float32 mean and std, torchvision's own
    operations in its order, so the floats are those ToTensor + Normalize give in the workers, bit for bit.

    255 is divided as a 0-dim tensor on the batch's device: CUDA turns a division by a Python scalar into a
    product with its reciprocal (1 ulp off), not a division by a tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero: {self.std}")
        self._constants: dict = {}

    def constants(self, device: torch.device, dtype: torch.dtype):
        key = (str(device), dtype)
        if key not in self._constants:
            self._constants[key] = (torch.tensor(255, dtype=dtype, device=device),
                                    torch.tensor(self.mean, dtype=dtype, device=device).view(-1, 1, 1),
                                    torch.tensor(self.std, dtype=dtype, device=device).view(-1, 1, 1))
        return self._constants[key]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"DeviceNormalise takes the loader's uint8 images, not {images.dtype}")
        dtype = torch.get_default_dtype()  # what ToTensor converts to
        scale, mean, std = self.constants(images.device, dtype)
        # in place on the one new float tensor: the same operations, without three more batch-size temporaries
        return images.to(dtype).div_(scale).sub_(mean).div_(std)

    def __getstate__(self):
        return {**self.__dict__, "_constants": {}}  # device tensors stay in their process

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


RESIZE_MODES = ("worker", "device")


class PackedImages:
    """A batch of uint8 C×h×w images of varying sizes in one flat tensor (one shared-memory block through the
    worker queue, one host-to-device copy) and their shapes; `unpack` gives the images back as views.

    The bytes are laid out h×w×C, Pillow's own layout: pil_to_tensor's C×h×w is a view of it, so packing copies
    each image once, without the transpose (the device's resize reads the C×h×w view)."""

    def __init__(self, pixels: torch.Tensor, shapes: Sequence[tuple[int, int, int]]):
        self.pixels = pixels
        self.shapes = [tuple(int(n) for n in shape) for shape in shapes]

    def __len__(self) -> int:
        return len(self.shapes)

    def pin_memory(self, device=None) -> "PackedImages":  # the DataLoader's pin_memory thread calls this
        return PackedImages(self.pixels.pin_memory(), self.shapes)

    def to(self, device, non_blocking: bool = False) -> "PackedImages":
        return PackedImages(self.pixels.to(device, non_blocking=non_blocking), self.shapes)

    def unpack(self) -> list[torch.Tensor]:
        images, offset = [], 0
        for channels, height, width in self.shapes:
            count = channels * height * width
            images.append(self.pixels[offset:offset + count].view(height, width, channels).permute(2, 0, 1))
            offset += count
        return images

    @classmethod
    def pack(cls, images: Sequence[torch.Tensor]) -> "PackedImages":
        numel = sum(image.numel() for image in images)
        out = None
        if torch.utils.data.get_worker_info() is not None:  # as default_collate: straight into shared memory
            storage = images[0]._typed_storage()._new_shared(numel, device=images[0].device)
            out = images[0].new(storage).resize_(numel)
        flat = [image.permute(1, 2, 0).reshape(-1) for image in images]  # a view for pil_to_tensor's images
        return cls(torch.cat(flat, out=out), [image.shape for image in images])


def collate_packed(batch) -> tuple[PackedImages, torch.Tensor]:
    """The DataLoader collate of `resize="device"` transforms: (PackedImages, labels)."""
    images, labels = zip(*batch)
    return PackedImages.pack(images), torch.tensor(labels)


class CropRegion(torch.nn.Module):
    """The worker's half of a training crop with `resize="device"`: the crop box (and flip) drawn exactly as
    MinimalistCrop / RandomResizedCrop (+ RandomHorizontalFlip) draw them, the same random calls in the same
    order, and the box's uint8 pixels C×h×w (a view of Pillow's h×w×C), mirrored when the flip is drawn
    (mirroring before or after Pillow's symmetric resize gives the same pixels); DeviceResize resizes them to
    size×size."""

    def __init__(self, crop: torch.nn.Module, flip: bool = False):
        super().__init__()
        self.crop = crop  # a MinimalistCrop or a T.RandomResizedCrop: its parameters and its size
        self.flip = flip

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.crop, "set_epoch"):
            self.crop.set_epoch(epoch)

    def box(self, img) -> tuple[int, int, int, int]:
        if isinstance(self.crop, MinimalistCrop):
            _, height, width = get_dimensions(img)
            return self.crop.crop_params(height, width)
        return self.crop.get_params(img, self.crop.scale, self.crop.ratio)

    def forward(self, img) -> torch.Tensor:
        top, left, height, width = self.box(img)
        region = TF.crop(img, top, left, height, width)
        if self.flip and torch.rand(1) < 0.5:  # RandomHorizontalFlip(p=0.5)'s draw
            region = TF.hflip(region)
        return TF.pil_to_tensor(region)


_PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13


def pillow_vertical_first(height: int, width: int, new_height: int, new_width: int) -> bool:
    """Whether Pillow resamples vertically first: from 13.0 (python-pillow/Pillow#9549) when both sides change
    and the height shrinks by more than twice the rows the width shrinks by (found on 994 random cases, exact at
    the boundary); before 13, never. The order matters: each pass rounds and clips to uint8."""
    return (_PILLOW_13 and width != new_width and new_height < height
            and height - new_height > 2 * (width - new_width))


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """torchvision's Resize(int) output size: the shorter side to `shorter`, the longer int(shorter·long/short)."""
    short, long = (height, width) if height <= width else (width, height)
    new_long = int(shorter * long / short)
    return (shorter, new_long) if height <= width else (new_long, shorter)


PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 - 8 - 2


def _pillow_filter(name: str):
    """Pillow's filter (Resample.c) and its support, the same double operations in the same order."""
    if name == "bilinear":
        return (lambda x: np.where(np.abs(x) < 1.0, 1.0 - np.abs(x), 0.0)), 1.0
    a = -0.5

    def bicubic(x):
        x = np.abs(x)
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        far = (((x - 5) * x + 8) * x - 4) * a
        return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

    return bicubic, 2.0


@functools.lru_cache(maxsize=4096)
def pillow_coefficients(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for an axis of `in_size` resampled to `out_size`:
    (first input index per output, out_size int64; integer weights out_size×ksize in units of 2^-22), computed
    with the same double operations (the taps summed in order, so the normalisation is Pillow's to the bit)."""
    filt, support = _pillow_filter(interpolation)
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C's (int) truncates toward zero
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    weights = filt((taps[None, :] + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale))
    weights = np.where(taps[None, :] < xmax[:, None], weights, 0.0)
    total = np.zeros(out_size)
    for tap in range(ksize):  # left to right, as Pillow sums them
        total = total + weights[:, tap]
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    scaled = weights * float(1 << PRECISION_BITS)
    return xmin, np.where(weights < 0, np.trunc(-0.5 + scaled), np.trunc(0.5 + scaled)).astype(np.int64)


class DeviceResize(torch.nn.Module):
    """The device's half of `resize="device"`: a PackedImages batch (after `.to(device)`) → the model's float
    input. Each image is resized as Pillow resizes it, then, with `shorter`, centre-cropped (or with `five`
    five-cropped) to `size`; stacked and normalised by DeviceNormalise. Without `shorter` each image is a crop box
    resized to size×size.

    method "pillow" (default): Pillow's two passes, bit for bit: its integer coefficients (`pillow_coefficients`)
    as a dense out×in float64 matrix, one matmul per pass (integer sums below 2^53: exact in any order), then
    Pillow's rounding (+2^21, shift by 22) and clip to 0..255 after each pass, the passes in Pillow's order.
    method "interpolate": `interpolate(mode, antialias=True, align_corners=False)` in float32 per pass, rounded
    half up and clipped after each pass (for devices with slow float64): within 1-2 levels on a few pixels."""

    METHODS = ("pillow", "interpolate")

    def __init__(self, size: int, mean, std, interpolation: str = "bicubic", *, shorter: int | None = None,
                 five: bool = False, method: str = "pillow", cache_size: int = 256):
        super().__init__()
        if interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation {interpolation!r}: bicubic or bilinear")
        if method not in self.METHODS:
            raise ValueError(f"method {method!r}: {' or '.join(self.METHODS)}")
        self.size, self.interpolation, self.shorter, self.five = size, interpolation, shorter, five
        self.method, self.cache_size = method, cache_size
        self.normalise = DeviceNormalise(mean, std)
        self._matrices: collections.OrderedDict = collections.OrderedDict()

    def __getstate__(self):
        return {**self.__dict__, "_matrices": collections.OrderedDict()}  # device tensors stay in their process

    def matrix(self, in_size: int, out_size: int, device) -> torch.Tensor:
        """out×in float64 matrix of Pillow's integer weights on `device` (the most recent `cache_size` kept)."""
        key = (in_size, out_size, str(device))
        if key in self._matrices:
            self._matrices.move_to_end(key)
            return self._matrices[key]
        xmin, weights = pillow_coefficients(in_size, out_size, self.interpolation)
        dense = np.zeros((out_size, in_size + weights.shape[1]), dtype=np.float64)
        rows = np.arange(out_size)[:, None]
        dense[rows, xmin[:, None] + np.arange(weights.shape[1])[None, :]] = weights  # taps past xmax weigh 0
        matrix = torch.from_numpy(dense[:, :in_size]).to(device)
        self._matrices[key] = matrix
        if len(self._matrices) > self.cache_size:
            self._matrices.popitem(last=False)
        return matrix

    def _pass(self, image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """One 1-D pass (only one of the two sides changes), rounded and clipped to uint8 as Pillow does."""
        if self.method == "interpolate":
            out = torch.nn.functional.interpolate(image.unsqueeze(0).float(), size=shape, mode=self.interpolation,
                                                  antialias=True, align_corners=False)[0]
            return out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
        pixels = image.to(torch.float64)
        if shape[1] != image.shape[2]:  # horizontal: C×h×w @ w×W
            sums = pixels @ self.matrix(image.shape[2], shape[1], image.device).T
        else:  # vertical: H×h @ C×h×w
            sums = self.matrix(image.shape[1], shape[0], image.device) @ pixels
        # Pillow: (2^21 + Σ pixel·weight) >> 22, clipped to 0..255 (exact: integers and a power of two)
        return sums.add_(1 << (PRECISION_BITS - 1)).div_(1 << PRECISION_BITS).floor_().clamp_(0, 255).to(torch.uint8)

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """One uint8 C×h×w image resized and cropped as the PIL path does, uint8."""
        _, height, width = image.shape
        target = (resized_shape(height, width, self.shorter) if self.shorter is not None
                  else (self.size, self.size))
        # Pillow's two 1-D passes in Pillow's order, each rounded and clipped to uint8, a side already at its
        # size skipped (Pillow skips it too)
        if pillow_vertical_first(height, width, *target):
            image = self._pass(image, (target[0], width))
        if width != target[1]:
            image = self._pass(image, (image.shape[1], target[1]))
        if image.shape[1] != target[0]:
            image = self._pass(image, tuple(target))
        if self.shorter is None:
            return image
        if self.five:
            return torch.stack(TF.five_crop(image, [self.size, self.size]))
        return TF.center_crop(image, [self.size, self.size])

    def forward(self, images) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            images = list(images)
        elif isinstance(images, PackedImages):
            images = images.unpack()
        return self.normalise(torch.stack([self.resize(image) for image in images]))

    def extra_repr(self) -> str:
        return (f"size={self.size}, interpolation={self.interpolation}, shorter={self.shorter}, "
                f"five={self.five}, method={self.method}")


def _on_device(stage: torch.nn.Module, resize: DeviceResize) -> T.Compose:
    transform = T.Compose([stage])
    transform.normalise = resize
    transform.collate = collate_packed
    return transform


def _check_resize(resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; valid: {', '.join(RESIZE_MODES)}")


def _finish(stages: list, mean, std, uint8: bool) -> T.Compose:
    """The PIL stages, then either ToTensor + Normalize (the references) or uint8 pixels with `normalise`."""
    if not uint8:
        return T.Compose(stages + _to_normalised_tensor(mean, std))
    transform = T.Compose(stages + [T.PILToTensor()])
    transform.normalise = DeviceNormalise(mean, std)
    return transform


RRC_INTERPOLATION = {"rrc_flip": BICUBIC, "rrc_flip_bilinear": InterpolationMode.BILINEAR}  # LIFT-plus, LIFT
RESIZE_INTERPOLATION = {"bicubic": BICUBIC, "bilinear": InterpolationMode.BILINEAR}  # LIFT-plus, LIFT


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in RESIZE_INTERPOLATION:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {', '.join(RESIZE_INTERPOLATION)}")


def train_transform(kind: str, size: int, num_epochs: int, mean, std, mda_func: str = "convex", *,
                    uint8: bool = False, resize: str = "worker", method: str = "pillow",
                    interpolation: str = "bicubic") -> T.Compose:
    """minimalist (LIFT+, on the schedule `mda_func`), rrc_flip (LIFT-plus `mda False`: bicubic RandomResizedCrop
    + flip), rrc_flip_bilinear (the LIFT repository: torchvision's default bilinear), none (resize + centre crop,
    with `interpolation`: LIFT-plus's bicubic, LIFT's bilinear).

    uint8: end in uint8 C×H×W pixels and carry `normalise` (DeviceNormalise) for the batch on the device.
    resize="device": the workers only decode and crop; `normalise` (DeviceResize) resizes on the device and
    `collate` packs the variable-size crops (uint8 is implied); `method` is DeviceResize's."""
    _check_resize(resize)
    _check_interpolation(interpolation)
    if resize == "device":
        if kind == "minimalist":
            return _on_device(CropRegion(MinimalistCrop(size, num_epochs, mda_func)),
                              DeviceResize(size, mean, std, method=method))
        if kind in RRC_INTERPOLATION:
            interpolation = RRC_INTERPOLATION[kind]
            return _on_device(CropRegion(T.RandomResizedCrop(size, interpolation=interpolation), flip=True),
                              DeviceResize(size, mean, std, interpolation.value, method=method))
        if kind == "none":
            return _on_device(T.PILToTensor(), DeviceResize(size, mean, std, interpolation, shorter=size,
                                                            method=method))
    if kind == "minimalist":
        crop = [MinimalistCrop(size, num_epochs, mda_func)]
    elif kind in RRC_INTERPOLATION:
        crop = [T.RandomResizedCrop(size, interpolation=RRC_INTERPOLATION[kind]), T.RandomHorizontalFlip()]
    elif kind == "none":
        crop = [T.Resize(size, interpolation=RESIZE_INTERPOLATION[interpolation]), T.CenterCrop(size)]
    else:
        raise ValueError(f"unknown augmentation {kind!r}; valid: minimalist, rrc_flip, rrc_flip_bilinear, none")
    return _finish(crop, mean, std, uint8)


def resize_for_test(size: int, tte: bool, expand: int | None = None) -> int:
    """LIFT-plus's test resize: size + expand pixels; unset, 24 with TTE (248 for 224), size // 7 without (256).

    LIFT-plus's 24 px is meant for CLIP's 224 px and up. Below 224 px (the embedded demo model) the TTE default
    scales with the size, round(24 * size / 224), so each of the five crops still covers ~90% of the image.
    """
    if expand is None:
        expand = (24 if size >= 224 else round(24 * size / 224)) if tte else size // 7
    return size + expand


def test_transform(size: int, mean, std, tte: bool = False, expand: int | None = None, *,
                   uint8: bool = False, resize: str = "worker", method: str = "pillow",
                   interpolation: str = "bicubic") -> T.Compose:
    """Resize to `resize_for_test` (LIFT-plus: bicubic; LIFT: bilinear, `interpolation`), then a centre crop, or
    with TTE the five crops stacked (crops×C×H×W); `uint8` and `resize` as in `train_transform` (with "device" the
    workers only decode)."""
    _check_resize(resize)
    _check_interpolation(interpolation)
    if resize == "device":
        return _on_device(T.PILToTensor(), DeviceResize(size, mean, std, interpolation,
                                                        shorter=resize_for_test(size, tte, expand), five=tte,
                                                        method=method))
    resizer = T.Resize(resize_for_test(size, tte, expand), interpolation=RESIZE_INTERPOLATION[interpolation])
    if not tte:
        return _finish([resizer, T.CenterCrop(size)], mean, std, uint8)
    if not uint8:
        return T.Compose([resizer, T.FiveCrop(size), StackCrops(T.Compose(_to_normalised_tensor(mean, std)))])
    transform = T.Compose([resizer, T.FiveCrop(size), StackCrops(T.PILToTensor())])
    transform.normalise = DeviceNormalise(mean, std)
    return transform


class StackCrops(torch.nn.Module):
    """Turn a tuple of crops into one crops×C×H×W tensor (a picklable class, unlike a lambda)."""

    def __init__(self, per_crop):
        super().__init__()
        self.per_crop = per_crop

    def forward(self, crops):
        return torch.stack([self.per_crop(c) for c in crops])


def resize_mode(runtime) -> str:
    """The `resize` argument of the transforms for a job's Runtime: "device" with `resize_on_device`."""
    return "device" if getattr(runtime, "resize_on_device", False) else "worker"


def set_epoch(transform, epoch: int) -> None:
    """Advance every epoch-scheduled transform inside `transform`."""
    for t in getattr(transform, "transforms", [transform]):
        if hasattr(t, "set_epoch"):
            t.set_epoch(epoch)
