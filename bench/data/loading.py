"""Torch datasets and seeded DataLoaders over an ImageSource."""
from __future__ import annotations

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
    """A DataLoader whose order and augmentation depend only on `seed` (reseed `loader.generator` per epoch)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        TransformedImages(source, transform), batch_size=batch_size,
        sampler=SeededSampler(len(source), shuffle, generator), num_workers=workers, generator=generator,
        pin_memory=pin_memory, persistent_workers=False, drop_last=False,
    )
