"""Torch datasets and seeded DataLoaders over an ImageSource, and the step that readies their batches on the device."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .base import ImageSource


class SeededSampler(Sampler):
    """Yields (index, augmentation seed) pairs, both drawn from `generator`.

    The seed travels with the index, so every sample's random crop depends on the generator's seed alone:
    not on how many DataLoader workers there are, nor on which process applies the transform.
    """

    def __init__(self, size: int, shuffle: bool, generator: torch.Generator):
        self.size = size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        seeds = torch.randint(0, 2**62, (self.size,), generator=self.generator)
        return zip(order.tolist(), seeds.tolist())


class TransformedImages(Dataset):
    def __init__(self, source: ImageSource, transform):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        image = self.source.load(index)
        generator = torch.default_generator  # the transforms draw from it; torch.manual_seed would cost 40× more
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.transform(image), int(self.source.labels[index])
        finally:
            generator.set_state(state)  # the caller's random stream is left as it was


def make_loader(source: ImageSource, transform, batch_size: int, *, shuffle: bool, seed: int,
                workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order and augmentation depend only on `seed` (reseed `loader.generator` per epoch).

    A transform with a `collate` (resize="device": variable-size crops) batches with it."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        TransformedImages(source, transform), batch_size=batch_size,
        sampler=SeededSampler(len(source), shuffle, generator), num_workers=workers, generator=generator,
        pin_memory=pin_memory, persistent_workers=False, drop_last=False,
        collate_fn=getattr(transform, "collate", None),
    )


def batch_normaliser(loader) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The device-side normalisation of a loader whose transform stops at uint8 pixels (`uint8=True` in
    bench.data.transforms; with resize="device" also the resize and crops of its packed images), or None when
    its batches are already the model's input (float transforms, cached features)."""
    transform = getattr(getattr(loader, "dataset", None), "transform", None)
    return getattr(transform, "normalise", None)


def to_device(images, device: torch.device, normalise=None) -> torch.Tensor:
    """`images` (a tensor, or a resize="device" transform's PackedImages) on `device` (asynchronously from pinned
    memory), then normalised there (and resized, for PackedImages) when `normalise` is set.

    A uint8 batch without a normaliser is an error: the model would see 0..255 integers."""
    images = images.to(device, non_blocking=True)
    if normalise is not None:
        return normalise(images)
    if not isinstance(images, torch.Tensor) or images.dtype == torch.uint8:
        raise TypeError("a uint8 image batch needs its transform's `normalise` "
                        "(see bench.data.loading.batch_normaliser)")
    return images
