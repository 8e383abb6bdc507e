"""resize="device": the workers decode and crop, the device resizes as Pillow does (bench.data.transforms)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.base import ImageSource
from bench.data.loading import batch_normaliser, make_loader, to_device
from bench.data.transforms import (DeviceResize, PackedImages, pillow_coefficients, pillow_vertical_first,
                                   resize_mode, set_epoch, train_transform)
from bench.data.transforms import test_transform as eval_transform
from bench.training.job import Runtime

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SIZES = [(160, 120), (800, 600), (300, 500), (97, 333)]
KINDS = ["minimalist", "rrc_flip", "rrc_flip_bilinear", "none"]


def smooth_image(width: int, height: int, seed: int) -> Image.Image:
    """A gradient-like colour field with grain, saturated in places (bicubic overshoots clip there)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(field + rng.integers(-40, 41, field.shape), 0, 255).astype(np.uint8))


def views(size=224, uint8=True, **device):
    """name → build(resize) for every view the harness uses."""
    out = {kind: (lambda resize, kind=kind: train_transform(kind, size, 5, CLIP_MEAN, CLIP_STD, "convex",
                                                            uint8=uint8, resize=resize, **device)) for kind in KINDS}
    out["test"] = lambda resize: eval_transform(size, CLIP_MEAN, CLIP_STD, uint8=uint8, resize=resize, **device)
    out["tte"] = lambda resize: eval_transform(size, CLIP_MEAN, CLIP_STD, tte=True, uint8=uint8, resize=resize,
                                               **device)
    return out


def device_pixels(transform, image) -> torch.Tensor:
    """The device mode's uint8 pixels of one image, before the normalisation."""
    resize = transform.normalise
    return resize.resize(transform(image))


def pixel_differences(method: str, seeds=range(4)):
    """{view: (max |diff|, mean |diff|)} in pixel levels, device mode against the PIL path (same seeds)."""
    figures = {}
    for name, build in views(method=method).items():
        diffs = []
        for seed in seeds:
            for width, height in SIZES:
                image = smooth_image(width, height, seed)
                worker, device = build("worker"), build("device")
                for t in (worker, device):
                    set_epoch(t, seed % 5)
                torch.manual_seed(seed)
                want = worker(image)
                torch.manual_seed(seed)
                got = device_pixels(device, image)
                assert got.shape == want.shape and got.dtype == torch.uint8
                diffs.append((got.int() - want.int()).abs().flatten())
        diffs = torch.cat(diffs).float()
        figures[name] = (diffs.max().item(), diffs.mean().item())
    return figures


def test_device_resize_is_pillow_bit_for_bit():
    """The default method reproduces Pillow's fixed-point passes: same crop boxes, flips, pixels, for each view."""
    figures = pixel_differences("pillow")
    print("pillow method, max/mean |diff| in levels:", figures)
    assert all(worst == 0 for worst, _ in figures.values()), figures


def test_interpolate_method_is_within_the_uint8_rounding():
    figures = pixel_differences("interpolate", seeds=range(2))
    print("interpolate method, max/mean |diff| in levels:", figures)
    for name, (worst, mean) in figures.items():
        assert worst <= 2 and mean < 0.05, (name, worst, mean)


@pytest.mark.parametrize("name", ["minimalist", "rrc_flip", "none", "test", "tte"])
def test_device_floats_are_the_reference_floats(name):
    """Through `to_device`, the batch equals the references' float pipeline (ToTensor + Normalize) bit for bit."""
    float_view, device_view = views(uint8=False)[name]("worker"), views()[name]("device")
    images = [smooth_image(w, h, i) for i, (w, h) in enumerate(SIZES)]
    want, items = [], []
    for i, image in enumerate(images):
        torch.manual_seed(i)
        want.append(float_view(image))
        torch.manual_seed(i)
        items.append((device_view(image), 0))
    packed, labels = device_view.collate(items)
    got = to_device(packed, torch.device("cpu"), device_view.normalise)
    assert torch.equal(got, torch.stack(want)) and labels.tolist() == [0] * len(images)


def test_crop_boxes_flips_and_random_stream_match():
    """The worker draws the same random numbers as the PIL path: the next draw after it is the same."""
    image = smooth_image(300, 200, 1)
    for name, build in views().items():
        for seed in range(5):
            torch.manual_seed(seed)
            build("worker")(image)
            after_worker = torch.rand(1)
            torch.manual_seed(seed)
            build("device")(image)
            assert torch.equal(torch.rand(1), after_worker), name


def test_pillow_pass_order_and_coefficients():
    assert pillow_vertical_first(500, 97, 224, 224) == (int(Image.__version__.split(".")[0]) >= 13)
    assert not pillow_vertical_first(120, 160, 224, 224) and not pillow_vertical_first(300, 100, 300, 50)
    xmin, weights = pillow_coefficients(600, 224, "bicubic")
    assert xmin.shape == (224,) and (weights.sum(1) - (1 << 22)).__abs__().max() <= weights.shape[1]


class _Images(ImageSource):
    def __init__(self, images):
        self.images, self.labels = images, np.arange(len(images)) % 3

    def __len__(self):
        return len(self.images)

    def keys(self):
        return [str(i) for i in range(len(self.images))]

    def load(self, index):
        return self.images[index]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_with_device_resize_matches_the_default_loader(workers):
    """A loader in device mode (variable-size crops packed per batch, through worker processes) gives the default
    loader's batches after `to_device`, for training (shuffled, seeded) and test views."""
    source = _Images([smooth_image(*SIZES[i % len(SIZES)], i) for i in range(10)])
    for build in (lambda r: train_transform("minimalist", 32, 5, CLIP_MEAN, CLIP_STD, uint8=True, resize=r),
                  lambda r: eval_transform(32, CLIP_MEAN, CLIP_STD, tte=True, uint8=True, resize=r)):
        batches = {}
        for resize in ("worker", "device"):
            loader = make_loader(source, build(resize), 4, shuffle=True, seed=3, workers=workers)
            normalise = batch_normaliser(loader)
            batches[resize] = [(to_device(x, torch.device("cpu"), normalise), y) for x, y in loader]
        for (a, la), (b, lb) in zip(batches["worker"], batches["device"], strict=True):
            assert torch.equal(a, b) and torch.equal(la, lb)


def test_packed_images_round_trip_and_pickle():
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in [(5, 7), (9, 4), (1, 1)]]
    packed = PackedImages.pack(images)
    assert len(packed) == 3 and all(torch.equal(a, b) for a, b in zip(packed.unpack(), images))
    assert all(torch.equal(a, b) for a, b in zip(packed.to("cpu").unpack(), images))
    transform = train_transform("rrc_flip", 16, 1, CLIP_MEAN, CLIP_STD, resize="device")
    transform.normalise(PackedImages.pack([torch.zeros(3, 20, 30, dtype=torch.uint8)]))  # fills its caches
    copy = pickle.loads(pickle.dumps(transform))
    assert copy.normalise._matrices == {} and copy.normalise(packed).shape == (3, 3, 16, 16)


def test_packed_batch_without_normaliser_is_an_error():
    packed = PackedImages.pack([torch.zeros(3, 4, 4, dtype=torch.uint8)])
    with pytest.raises(TypeError, match="normalise"):
        to_device(packed, torch.device("cpu"))


def test_default_path_unchanged_and_runtime_switch():
    """resize="worker" (the default) builds the same PIL transforms as before; the Runtime field picks the mode
    and is not part of the job id."""
    assert resize_mode(Runtime()) == "worker" and resize_mode(Runtime(resize_on_device=True)) == "device"
    default, explicit = train_transform("minimalist", 32, 5, CLIP_MEAN, CLIP_STD), train_transform(
        "minimalist", 32, 5, CLIP_MEAN, CLIP_STD, resize="worker")
    assert repr(default) == repr(explicit) and not hasattr(default, "collate")
    image = smooth_image(160, 120, 0)
    torch.manual_seed(0)
    a = default(image)
    torch.manual_seed(0)
    assert torch.equal(a, explicit(image))
    with pytest.raises(ValueError, match="resize"):
        train_transform("none", 32, 1, CLIP_MEAN, CLIP_STD, resize="gpu")
    with pytest.raises(ValueError, match="method"):
        DeviceResize(32, CLIP_MEAN, CLIP_STD, method="fast")


def test_resize_on_device_is_not_in_the_job_id():
    import dataclasses

    from bench.training.job import Job

    assert "resize_on_device" in {f.name for f in dataclasses.fields(Runtime)}
    field = {f.name: f for f in dataclasses.fields(Job)}["runtime"]
    assert field.compare is False
    source = Job.config.__code__.co_names
    assert "runtime" not in source and "resize_on_device" not in source


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_pixels_and_floats_are_the_cpu_ones():
    """float64 matmuls of integers are exact in any order: the GPU gives the CPU's (Pillow's) pixels."""
    for name, build in views().items():
        transform = build("device")
        items = []
        for i, (w, h) in enumerate(SIZES):
            torch.manual_seed(i)
            items.append((transform(smooth_image(w, h, i)), 0))
        packed, _ = transform.collate(items)
        cpu = to_device(packed, torch.device("cpu"), transform.normalise)
        gpu = to_device(packed.pin_memory(), torch.device("cuda"), transform.normalise)
        assert torch.equal(gpu.cpu(), cpu), name
