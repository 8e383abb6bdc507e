"""Torch datasets and seeded DataLoaders over an ImageSource."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .base import ImageSource


class TransformedImages(Dataset):
    def __init__(self, source: ImageSource, transform):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.transform(self.source.load(index)), int(self.source.labels[index])


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(source: ImageSource, transform, batch_size: int, *, shuffle: bool, seed: int,
                workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order and augmentation depend only on `seed` (for any number of workers)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        TransformedImages(source, transform), batch_size=batch_size, shuffle=shuffle, num_workers=workers,
        generator=generator, worker_init_fn=_seed_worker, pin_memory=pin_memory,
        persistent_workers=False, drop_last=False,
    )
