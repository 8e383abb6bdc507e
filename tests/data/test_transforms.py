import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

from bench.data.transforms import MinimalistCrop, minimalist_min_scale, train_transform
from bench.data.transforms import test_transform as eval_transform
from bench.models import load_backbone
from tests.conftest import make_job

MEAN = STD = (0.5, 0.5, 0.5)


def test_minimalist_schedule_matches_reference():
    assert [round(minimalist_min_scale(e, 5), 3) for e in range(5)] == [0.08, 0.109, 0.203, 0.391, 1.0]
    assert minimalist_min_scale(0, 1) == pytest.approx(0.08)  # E=1 must not divide by zero


@pytest.mark.parametrize("schedule, epochs, values", [  # LIFT-plus's values (spec §5)
    ("convex", 5, [0.08, 0.109, 0.203, 0.391, 1.0]),
    ("linear", 5, [0.08, 0.31, 0.54, 0.77, 1.0]),
    ("concave", 5, [0.08, 0.689, 0.877, 0.971, 1.0]),
    ("min", 5, [0.08] * 5),
    ("max", 5, [1.0] * 5),
    ("convex", 15, [0.08, 0.082, 0.089, 0.101, 0.118, 0.141, 0.169, 0.203, 0.245, 0.295, 0.356, 0.431, 0.526,
                    0.659, 1.0]),
])
def test_mda_schedules_match_lift_plus(schedule, epochs, values):
    assert [round(minimalist_min_scale(e, epochs, schedule), 3) for e in range(epochs)] == values
    assert minimalist_min_scale(0, 1, schedule) == values[0]  # E=1: t = 0, no division by zero


def test_unknown_mda_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown mda_func 'cubic'; valid: min, max, linear, convex, concave"):
        train_transform("minimalist", 32, 5, MEAN, STD, "cubic")


def test_the_recipe_mda_func_and_expand_reach_the_transforms(monkeypatch):
    from bench import features
    from bench.data import build_dataset
    from bench.training.context import JobContext
    from bench.training.loop import _training_batches
    from regimes import get_regime

    job = make_job("lift_plus", mda_func="concave", expand=8)
    data = build_dataset(job.dataset_config, "unused")
    torch.manual_seed(0)
    model = get_regime("lift_plus").build(load_backbone("ltbench-tiny", "none", data.classnames), data, job.recipe)
    ctx = JobContext.create(job)
    crop = _training_batches(model, data, job.recipe, ctx)[2].transforms[0]
    crop.set_epoch(1)
    assert crop.min_scale == minimalist_min_scale(1, job.recipe.epochs, "concave")
    loaders = []
    make_loader = features.make_loader
    monkeypatch.setattr(features, "make_loader", lambda source, transform, *a, **k: loaders.append(transform)
                        or make_loader(source, transform, *a, **k))
    for view in ("tte", "test"):
        features.features(model, data, "test", view, ctx)
    assert [t.transforms[0].size for t in loaders] == [32 + 8, 32 + 8]
    key = features.features_key(ctx, data, "test", "tte", 32)
    assert key["resize"] == 40 and features.features_key(JobContext.create(make_job("lift_plus")), data, "test",
                                                         "tte", 32)["resize"] == 32 + 3


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


@pytest.mark.parametrize("size, tte, expand, side", [
    (224, True, None, 248), (224, False, None, 256),  # the papers' 248 / 256
    (336, True, None, 360), (336, False, None, 384),  # LIFT-plus: +24 absolute with TTE, size // 7 without
    (32, True, None, 35), (32, False, None, 36),  # below 224 px the TTE default scales: 32 + round(24·32/224)
    (112, True, None, 124), (223, True, None, 247),
    (224, True, 0, 224), (224, False, 16, 240), (32, True, 8, 40),
])
def test_test_resize_is_size_plus_expand(size, tte, expand, side):
    assert eval_transform(size, MEAN, STD, tte=tte, expand=expand).transforms[0].size == side


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


def _random_images(n=6, seed=0):
    """Random-content RGB images of odd sizes, both orientations."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        height, width = int(rng.integers(40, 140)), int(rng.integers(40, 140))
        coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(field + rng.integers(-40, 41, field.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels))
    return images


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@pytest.mark.parametrize("build", [
    *[lambda uint8, kind=kind: train_transform(kind, 32, 5, CLIP_MEAN, CLIP_STD, "convex", uint8=uint8)
      for kind in ("minimalist", "rrc_flip", "rrc_flip_bilinear", "none")],
    lambda uint8: eval_transform(32, CLIP_MEAN, CLIP_STD, uint8=uint8),
    lambda uint8: eval_transform(32, CLIP_MEAN, CLIP_STD, tte=True, uint8=uint8),
    lambda uint8: eval_transform(24, MEAN, STD, tte=True, expand=5, uint8=uint8),
], ids=["minimalist", "rrc_flip", "rrc_flip_bilinear", "none", "test", "tte", "tte_expand"])
def test_uint8_crops_normalised_on_the_device_are_the_reference_floats_bit_for_bit(build):
    """Workers' uint8 crops + DeviceNormalise give exactly ToTensor + Normalize's floats, batched or not."""
    old, new = build(False), build(True)
    assert not hasattr(old, "normalise")
    for epoch in (0, 2, 4):
        from bench.data.transforms import set_epoch

        set_epoch(old, epoch)
        set_epoch(new, epoch)
        reference, crops = [], []
        for i, image in enumerate(_random_images(seed=epoch)):
            torch.manual_seed(100 * epoch + i)
            reference.append(old(image))
            torch.manual_seed(100 * epoch + i)
            crops.append(new(image))
        for want, crop in zip(reference, crops):
            assert crop.dtype == torch.uint8 and crop.shape == want.shape
            got = new.normalise(crop)
            assert got.dtype == want.dtype == torch.float32 and torch.equal(got, want)
        same_shape = [c for c in crops if c.shape == crops[0].shape]
        batch = new.normalise(torch.stack(same_shape))  # a collated batch, as after .to(device)
        assert torch.equal(batch, torch.stack([r for r, c in zip(reference, crops) if c.shape == crops[0].shape]))


def test_device_normalise_refuses_floats_and_survives_pickling():
    import pickle

    transform = train_transform("none", 16, 1, MEAN, STD, uint8=True)
    transform.normalise(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))  # fills its constants cache
    copy = pickle.loads(pickle.dumps(transform))
    assert copy.normalise._constants == {} and copy.normalise.mean == (0.5, 0.5, 0.5)
    with pytest.raises(TypeError, match="uint8"):
        transform.normalise(torch.zeros(1, 3, 16, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_normalise_on_cuda_matches_the_cpu_reference():
    image = _random_images(1)[0]
    old, new = (eval_transform(32, CLIP_MEAN, CLIP_STD, tte=True, uint8=u) for u in (False, True))
    assert torch.equal(new.normalise(new(image).cuda()).cpu(), old(image))


def _pil_resized(image: Image.Image, shorter: int, interpolation: int) -> torch.Tensor:
    """Pillow's own resize of the shorter side to `shorter` (torchvision's Resize(int) size), C×H×W uint8."""
    width, height = image.size
    size = (shorter, int(shorter * height / width)) if width <= height else (int(shorter * width / height), shorter)
    return torch.tensor(np.asarray(image.resize(size, interpolation))).permute(2, 0, 1)


@pytest.mark.parametrize("name, filter_", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
def test_the_deterministic_views_resize_with_the_recipes_interpolation(name, filter_):
    """LIFT resizes with torchvision's default bilinear, LIFT-plus bicubic: test, TTE and the plain view (the
    classifier-init images, augmentation none) use the filter they are given, in the workers and on the device."""
    image = _random_images(1, seed=3)[0]
    resized = _pil_resized(image, 32 + 32 // 7, filter_)
    top, left = (resized.shape[1] - 32) // 2, (resized.shape[2] - 32) // 2
    test = eval_transform(32, MEAN, STD, uint8=True, interpolation=name)
    assert torch.equal(test(image), resized[:, top:top + 32, left:left + 32])
    tte = eval_transform(32, MEAN, STD, tte=True, uint8=True, interpolation=name)(image)
    assert torch.equal(tte[0], _pil_resized(image, 35, filter_)[:, :32, :32])  # the top-left crop of the 35 px resize
    plain = train_transform("none", 32, 1, MEAN, STD, uint8=True, interpolation=name)(image)
    resized = _pil_resized(image, 32, filter_)
    top, left = (resized.shape[1] - 32) // 2, (resized.shape[2] - 32) // 2
    assert torch.equal(plain, resized[:, top:top + 32, left:left + 32])
    for build in (lambda r: eval_transform(32, MEAN, STD, tte=True, uint8=True, resize=r, interpolation=name),
                  lambda r: train_transform("none", 32, 1, MEAN, STD, uint8=True, resize=r, interpolation=name)):
        device = build("device")
        assert torch.equal(device.normalise.resize(device(image)), build("worker")(image))


def test_bilinear_and_bicubic_views_differ_and_an_unknown_filter_is_refused():
    image = _random_images(1, seed=4)[0]
    bicubic, bilinear = (eval_transform(32, MEAN, STD, uint8=True, interpolation=f)(image) for f in ("bicubic",
                                                                                                      "bilinear"))
    assert not torch.equal(bicubic, bilinear)
    with pytest.raises(ValueError, match="unknown interpolation 'nearest'; valid: bicubic, bilinear"):
        eval_transform(32, MEAN, STD, interpolation="nearest")
    with pytest.raises(ValueError, match="unknown interpolation 'nearest'"):
        train_transform("none", 32, 1, MEAN, STD, interpolation="nearest")


def test_the_recipes_interpolation_reaches_the_test_views_and_their_cache_key(monkeypatch):
    from bench import features
    from bench.data import build_dataset
    from bench.training.context import JobContext

    job = make_job("zero_shot", interpolation="bilinear")
    data = build_dataset(job.dataset_config, "unused")
    ctx = JobContext.create(job)
    transforms = []
    make_loader = features.make_loader
    monkeypatch.setattr(features, "make_loader", lambda source, transform, *a, **k: transforms.append(transform)
                        or make_loader(source, transform, *a, **k))
    features.features(features.PretrainedTower(ctx, 32), data, "test", "test", ctx)
    assert transforms[0].transforms[0].interpolation == InterpolationMode.BILINEAR
    bicubic = JobContext.create(make_job("zero_shot"))
    assert features.features_key(ctx, data, "test", "test", 32)["interpolation"] == "bilinear"
    assert "interpolation" not in features.features_key(bicubic, data, "test", "test", 32)  # keys of before
