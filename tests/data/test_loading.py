import numpy as np
import pytest
import torch

from bench.data.base import ArrayImages
from bench.data.loading import batch_normaliser, make_loader, to_device
from bench.data.transforms import test_transform as eval_transform
from bench.data.transforms import train_transform


def _source(n=12):
    rng = np.random.default_rng(0)
    return ArrayImages(rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8), np.arange(n) % 3, "t")


def _epoch(loader, epoch_seed):
    loader.generator.manual_seed(epoch_seed)
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_augmentation_and_order_do_not_depend_on_workers_or_the_global_random_state():
    transform = train_transform("rrc_flip", 16, 5, (0.5,) * 3, (0.5,) * 3)
    epochs = []
    for workers, global_seed in ((0, 1), (0, 2), (1, 3), (2, 4)):
        torch.manual_seed(global_seed)
        loader = make_loader(_source(), transform, 4, shuffle=True, seed=0, workers=workers)
        epochs.append(_epoch(loader, 7))
    for images, labels in epochs[1:]:
        assert torch.equal(images, epochs[0][0]) and torch.equal(labels, epochs[0][1])


def test_each_epoch_seed_draws_new_crops_and_order_and_leaves_the_caller_stream_alone():
    loader = make_loader(_source(), train_transform("minimalist", 16, 5, (0.5,) * 3, (0.5,) * 3), 4,
                         shuffle=True, seed=0, workers=0)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    first, first_labels = _epoch(loader, 1)
    assert torch.equal(torch.rand(3), expected_next)  # loading consumed nothing from the global generator
    second, second_labels = _epoch(loader, 2)
    assert not torch.equal(first, second) and not torch.equal(first_labels, second_labels)
    assert sorted(first_labels.tolist()) == sorted(second_labels.tolist())  # every image once per epoch


def test_unshuffled_loader_keeps_the_source_order():
    source = _source()
    loader = make_loader(source, train_transform("none", 16, 1, (0.5,) * 3, (0.5,) * 3), 5, shuffle=False,
                         seed=0, workers=0)
    assert torch.cat([y for _, y in loader]).tolist() == source.labels.tolist()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["minimalist", "rrc_flip", "test", "tte"])
def test_uint8_loader_normalised_on_the_device_gives_the_float_loader_batches(kind, workers):
    def build(uint8):
        if kind in ("test", "tte"):
            return eval_transform(16, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28), tte=kind == "tte", uint8=uint8)
        return train_transform(kind, 16, 5, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28), uint8=uint8)

    old = make_loader(_source(), build(False), 4, shuffle=True, seed=0, workers=0)
    new = make_loader(_source(), build(True), 4, shuffle=True, seed=0, workers=workers)
    assert batch_normaliser(old) is None and batch_normaliser(new) is not None
    for epoch_seed in (1, 2):
        old.generator.manual_seed(epoch_seed)
        new.generator.manual_seed(epoch_seed)
        for (want, want_labels), (crops, labels) in zip(old, new, strict=True):
            assert crops.dtype == torch.uint8 and torch.equal(labels, want_labels)
            images = to_device(crops, torch.device("cpu"), batch_normaliser(new))
            assert torch.equal(images, want)


def test_uint8_batch_without_its_normaliser_is_refused():
    with pytest.raises(TypeError, match="normalise"):
        to_device(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.device("cpu"))
    floats = torch.rand(2, 3, 4, 4)
    assert to_device(floats, torch.device("cpu")) is floats
