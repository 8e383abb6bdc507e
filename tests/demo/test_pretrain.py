import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from bench.data import build_dataset, dataset_config
from bench.demo.pretrain import PretrainConfig, pretrain, save_weights
from bench.models import WeightsUnavailableError, create_clip
from bench.models import backbone
from bench.models.backbone import BUNDLED, DEMO_MODEL, bundled_weights_path
from bench.training.engine import train
from tests.conftest import make_job

SHORT = PretrainConfig(steps=3, batch_size=16, warmup_steps=1)


def test_pretraining_is_seeded_and_saves_loadable_weights(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.demo.pretrain.latin_square_concepts", lambda: list(range(5)))
    first, summary = pretrain(SHORT)
    again, _ = pretrain(SHORT)
    other, _ = pretrain(dataclasses.replace(SHORT, seed=1))
    state, same, different = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not all(torch.equal(state[k], different[k]) for k in state)
    assert set(summary) == {"minutes", "zero_shot_clean", "zero_shot_web", "zero_shot_target"}

    monkeypatch.setattr(backbone, "WEIGHTS_DIR", tmp_path)
    save_weights(first, bundled_weights_path(DEMO_MODEL), SHORT, summary)
    with safe_open(str(tmp_path / f"{DEMO_MODEL}.safetensors"), "pt") as fh:
        assert json.loads(fh.metadata()["config"])["steps"] == 3
    loaded = create_clip(DEMO_MODEL, BUNDLED).state_dict()
    assert all(torch.allclose(loaded[k], state[k].half().float()) for k in state)


def test_missing_or_corrupt_bundled_weights_say_how_to_recreate_them(tmp_path, monkeypatch):
    monkeypatch.setattr(backbone, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsUnavailableError, match="python -m bench.demo pretrain"):
        create_clip(DEMO_MODEL, BUNDLED)
    (tmp_path / f"{DEMO_MODEL}.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="cannot be loaded.*python -m bench.demo pretrain"):
        create_clip(DEMO_MODEL, BUNDLED)


def test_bundled_checkpoint_transfers_zero_shot_to_demo_lt():
    job = dataclasses.replace(make_job("zero_shot", "demo_lt"), model=DEMO_MODEL, pretrained=BUNDLED)
    result = train(job)
    chance = 1 / len(build_dataset(dataset_config("demo_lt"), "unused").classnames)
    assert result.metrics["test"]["top1"] / 100 > 40 * chance  # measured: 82.4%


def test_command_line_writes_the_checkpoint_it_names(tmp_path, monkeypatch, capsys):
    from bench.demo.__main__ import main

    monkeypatch.setattr("bench.demo.pretrain.latin_square_concepts", lambda: list(range(3)))
    out = tmp_path / "demo.safetensors"
    assert main(["pretrain", "--steps", "2", "--batch-size", "8", "--warmup-steps", "1", "--lr", "0.0005",
                 "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with safe_open(str(out), "pt") as fh:
        config = json.loads(fh.metadata()["config"])
    assert (config["steps"], config["batch_size"], config["lr"]) == (2, 8, 0.0005)
