"""A parent job's cached features: every head kind round-trips to the bit; damaged, other-job and missing files are
refused with the fix; the text-encoder classifier cannot be cached."""
import json

import pytest
import torch
from safetensors import safe_open

from bench.evaluation import top_predictions
from bench.models.heads import TextClassifier, ZeroShotHead, make_classifier
from bench.remedies.cached import (FORMAT, HEAD_KINDS, CachedFeaturesError, head_kind, load_cached_features,
                                   save_cached_features)
from tests.conftest import tiny_backbone

D, K, E = 6, 4, 5  # feature dim, classes, text embedding dim


def make_head(kind: str) -> torch.nn.Module:
    """A head of `kind` with random tensors (a linear head with a non-zero bias) and options off their defaults."""
    generator = torch.Generator().manual_seed(1)
    if kind == "zero_shot":
        return ZeroShotHead(torch.randn(D, E, generator=generator), torch.randn(K, E, generator=generator), 42.5)
    head = HEAD_KINDS[kind](D, K, 17.5) if kind == "cosine" else HEAD_KINDS[kind](D, K)
    with torch.no_grad():
        for tensor in head.parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return head


def make_splits(crops: int = 5) -> dict:
    generator = torch.Generator().manual_seed(2)
    return {"train": (torch.randn(12, D, generator=generator), torch.arange(12) % K),
            "test": (torch.randn(8, crops, D, generator=generator), torch.arange(8) % K),
            "val": (torch.randn(4, 1, D, generator=generator), torch.arange(4) % K)}


@pytest.mark.parametrize("kind", list(HEAD_KINDS))
def test_every_head_kind_round_trips_to_the_bit(tmp_path, kind):
    head, splits = make_head(kind), make_splits()
    path = tmp_path / "features" / "job.safetensors"
    record = save_cached_features(path, "job", splits, head)
    assert record["bytes"] == path.stat().st_size
    assert record["splits"] == {"train": [12, 1, D], "test": [8, 5, D], "val": [4, 1, D]}
    cached = load_cached_features(path, "job", record["sha256"])
    assert type(cached.head) is type(head) and cached.head_kind == kind == head_kind(head)
    assert not cached.head.training
    for option in ("scale", "logit_scale"):
        assert getattr(cached.head, option, None) == getattr(head, option, None)
    state = cached.head.state_dict()
    assert state.keys() == head.state_dict().keys()
    assert all(torch.equal(state[name], value) for name, value in head.state_dict().items())
    for split, (features, labels) in splits.items():
        assert torch.equal(cached.splits[split][0], features) and torch.equal(cached.splits[split][1], labels)
    test = splits["test"][0]
    with torch.no_grad():
        assert torch.equal(cached.head(test.flatten(0, 1)), head(test.flatten(0, 1)))  # the logits, to the bit
    for got, want in zip(top_predictions(cached.head, test, torch.device("cpu")),
                         top_predictions(head, test, torch.device("cpu"))):
        assert (got == want).all()


def test_the_file_names_its_format_job_and_head(tmp_path):
    path = tmp_path / "job.safetensors"
    save_cached_features(path, "job", {k: v for k, v in make_splits(crops=1).items() if k != "val"},
                         make_head("cosine"))
    with safe_open(str(path), framework="pt") as fh:
        metadata, names = fh.metadata(), set(fh.keys())
    assert metadata["format"] == FORMAT and metadata["job_id"] == "job" and metadata["head_kind"] == "cosine"
    assert json.loads(metadata["head_options"]) == {"scale": 17.5}
    assert names == {"train.features", "train.labels", "test.features", "test.labels", "head.weight"}
    assert "val" not in load_cached_features(path, "job").splits


def test_damaged_other_and_missing_files_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "job.safetensors"
    record = save_cached_features(path, "job", make_splits(), make_head("linear"))
    for job_id, sha256, problem in (("other", None, "not job other's"), ("job", "0" * 64, "damaged")):
        with pytest.raises(CachedFeaturesError, match=problem):
            load_cached_features(path, job_id, sha256)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte in the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CachedFeaturesError, match="damaged .*SHA-256.*--force"):
        load_cached_features(path, "job")
    path.write_bytes(bytes(data[:len(data) // 2]))  # cut short
    with pytest.raises(CachedFeaturesError, match="damaged .*--force"):
        load_cached_features(path, "job", record["sha256"])
    with pytest.raises(CachedFeaturesError, match="missing.*--force"):
        load_cached_features(tmp_path / "none.safetensors", "job")


def test_the_text_encoder_classifier_cannot_be_cached(tmp_path):
    backbone = tiny_backbone(["a", "b", "c", "d"], text_tower=True)
    head = make_classifier("text", "semantic", backbone, K, 25.0)
    assert isinstance(head, TextClassifier)
    with pytest.raises(ValueError, match="text encoder"):
        save_cached_features(tmp_path / "job.safetensors", "job", make_splits(), head)
    assert not (tmp_path / "job.safetensors").exists()


def test_splits_that_do_not_fit_the_head_are_refused(tmp_path):
    splits = make_splits()
    for changed, problem in (({"test": splits["test"][0][:, 0]}, "N×C×D"),
                             ({"train": splits["train"][0].double()}, "float32"),
                             ({"train": torch.randn(12, D + 1)}, f"D = {D}")):
        bad = {**splits, **{split: (features, splits[split][1]) for split, features in changed.items()}}
        with pytest.raises(ValueError, match=problem):
            save_cached_features(tmp_path / "job.safetensors", "job", bad, make_head("linear"))
    with pytest.raises(ValueError, match="outside"):
        save_cached_features(tmp_path / "job.safetensors", "job",
                             {**splits, "train": (splits["train"][0], splits["train"][1] + K)}, make_head("linear"))
    with pytest.raises(ValueError, match="train and test"):
        save_cached_features(tmp_path / "job.safetensors", "job", {"train": splits["train"]}, make_head("linear"))
