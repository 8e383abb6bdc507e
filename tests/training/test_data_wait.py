"""`fit` records, per epoch, how long the steps waited for the loader: `data_wait_s` and `data_wait_share`."""
import time

import pytest
import torch

from bench.data import build_dataset
from bench.models import load_backbone
from bench.training import loop
from bench.training.context import JobContext
from regimes import get_regime
from tests.conftest import make_job

DELAY = 0.05  # seconds the slow loader sleeps before each batch
STARVED = 1.0  # ... in the test of a starved loop: far above a head's step on cached features, even on a busy machine


class SlowLoader:
    """A loader that takes DELAY seconds to produce each batch of the real one (a starved GPU, in small)."""

    def __init__(self, loader, delay: float):
        self.loader, self.generator, self.delay = loader, loader.generator, delay

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            time.sleep(self.delay)
            yield batch


SMALL = {"num_classes": 4, "max_per_class": 40, "imbalance_ratio": 4.0, "test_per_class": 2}  # some 80 training images


def _fit(regime, monkeypatch, slow: bool, delay: float = DELAY, **recipe):
    job = make_job(regime, epochs=2, data_overrides=SMALL, **recipe)
    data = build_dataset(job.dataset_config, "unused")
    torch.manual_seed(0)
    model = get_regime(regime).build(load_backbone("ltbench-tiny", "none", data.classnames), data, job.recipe)
    if slow:
        batches = loop._training_batches
        monkeypatch.setattr(loop, "_training_batches", lambda *a: (lambda n, ld, t: (n, SlowLoader(ld, delay), t))(
            *batches(*a)))
    return loop.fit(model, data, job.recipe, JobContext.create(job))


def test_a_slow_loader_shows_as_a_high_data_wait_share(monkeypatch):
    # a frozen tower without augmentation trains its head on cached features: the steps themselves are quick
    history = _fit("linear_probe", monkeypatch, slow=True, delay=STARVED, augmentation="none", batch_size=40)
    for record in history:
        batches = -(-round(record["seconds"] * record["images_per_s"]) // 40)  # the epoch's batches, the last one too
        assert record["data_wait_s"] <= record["seconds"]
        assert record["data_wait_s"] >= STARVED * batches
        assert 0.6 < record["data_wait_share"] <= 1.0  # ~0.95 on an idle machine, ~0.85 on a busy one
        assert record["data_wait_share"] == pytest.approx(record["data_wait_s"] / record["seconds"])


def test_images_through_the_loader_record_their_wait_and_waiting_changes_no_number(monkeypatch):
    fast = _fit("full", monkeypatch, slow=False, batch_size=16)
    slow = _fit("full", monkeypatch, slow=True, batch_size=16)
    assert [h["loss"] for h in slow] == [h["loss"] for h in fast]  # waiting changes no number
    for quick, starved in zip(fast, slow):
        assert 0.0 <= quick["data_wait_share"] < 1.0 and 0.0 < starved["data_wait_share"] <= 1.0
        batches = -(-round(starved["seconds"] * starved["images_per_s"]) // 16)
        assert starved["data_wait_s"] >= DELAY * batches  # every sleep is inside next()
