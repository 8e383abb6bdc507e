import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.transforms import MinimalistCrop, minimalist_min_scale, train_transform
from bench.data.transforms import test_transform as eval_transform

MEAN = STD = (0.5, 0.5, 0.5)


def test_minimalist_schedule_matches_reference():
    assert [round(minimalist_min_scale(e, 5), 3) for e in range(5)] == [0.08, 0.109, 0.203, 0.391, 1.0]
    assert minimalist_min_scale(0, 1) == pytest.approx(0.08)  # E=1 must not divide by zero


def test_minimalist_crops_are_square_and_within_scale():
    crop = MinimalistCrop(224, num_epochs=5)
    torch.manual_seed(0)
    for epoch in range(5):
        crop.set_epoch(epoch)
        for _ in range(50):
            top, left, h, w = crop.crop_params(300, 400)
            assert h == w and 0 <= top <= 300 - h and 0 <= left <= 400 - w
            fraction = h * w / (300 * 400)
            assert crop.min_scale * 0.75 - 0.01 <= fraction <= 0.75 + 0.01  # clipped to the largest square
    crop.set_epoch(4)
    assert crop.crop_params(300, 400)[2] == 300  # last epoch: the whole largest square


def test_minimalist_never_flips():
    image = Image.new("RGB", (64, 64))
    image.paste((255, 0, 0), (0, 0, 32, 64))  # left half red
    transform = train_transform("minimalist", 64, 1, MEAN, STD)
    transform.transforms[0].set_epoch(0)
    crop = transform.transforms[0]
    crop.crop_params = lambda h, w: (0, 0, 64, 64)
    out = transform(image)
    assert out[0, :, :16].mean() > out[0, :, -16:].mean()


def test_tte_five_crops_from_248_and_plain_from_256():
    image = Image.new("RGB", (300, 400), (10, 200, 30))
    crops = eval_transform(224, MEAN, STD, tte=True)(image)
    assert crops.shape == (5, 3, 224, 224)
    plain = eval_transform(224, MEAN, STD)
    assert plain(image).shape == (3, 224, 224)
    assert plain.transforms[0].size == 256 and eval_transform(224, MEAN, STD, tte=True).transforms[0].size == 248


def test_tte_crops_are_the_corners_and_centre_of_the_248_resize():
    torch.manual_seed(0)
    pixels = (torch.rand(300, 400, 3) * 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels)
    crops = eval_transform(224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), tte=True)(image)
    resized = torch.tensor(np.asarray(image.resize((330, 248), Image.BICUBIC))).permute(2, 0, 1).float() / 255
    h, w = resized.shape[1:]
    top, left = round((h - 224) / 2), round((w - 224) / 2)
    expected = [resized[:, :224, :224], resized[:, :224, w - 224:], resized[:, h - 224:, :224],
                resized[:, h - 224:, w - 224:], resized[:, top:top + 224, left:left + 224]]
    for crop, want in zip(crops, expected):
        assert (crop - want).abs().max() < 0.02  # PIL vs torchvision bicubic rounding
