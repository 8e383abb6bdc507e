import json
import struct

import pytest

from bench.cli import main
from tests.tracking.conftest import TRACKED, TWO_EPOCHS, job_results

BLOCK, HEADER = 32768, 7  # the .wandb log: LevelDB-style blocks of records, after a 7-byte file header


def wandb_records(path) -> list:
    """The protobuf records of an offline run's .wandb file (W&B 0.31 ships no reader of its own)."""
    from wandb.proto import wandb_internal_pb2

    raw, position, chunk, records = path.read_bytes(), HEADER, b"", []
    while position + 7 <= len(raw):
        if BLOCK - position % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            position += BLOCK - position % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        if kind == 0:
            break
        chunk += raw[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or a record's last chunk
            records.append(wandb_internal_pb2.Record.FromString(chunk))
            chunk = b""
    return records


def offline_run(out, job_id) -> dict:
    """An offline run's name, group, config, history rows, summary and exit code."""
    [path] = (out / "wandb").glob(f"offline-run-*-{job_id}-*/run-*.wandb")
    run = {"config": {}, "summary": {}, "history": []}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group, project=record.run.project)
            run["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            run["history"].append({"/".join(item.nested_key) or item.key: json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            run["summary"].update({"/".join(item.nested_key) or item.key: json.loads(item.value_json)
                                   for item in record.summary.update})
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wandb") / "run"
    assert main([*TRACKED, *TWO_EPOCHS, "--regimes", "linear_probe", "--out", str(out), "--log", "wandb",
                 "--wandb-offline", "--wandb-project", "lt-study"]) == 0
    return out


def test_an_offline_run_holds_the_jobs_config_curves_and_final_metrics(run):
    [(job_id, result)] = job_results(run).items()
    logged = offline_run(run, job_id)
    assert logged["name"] == result["label"] and logged["group"] == run.name and logged["project"] == "lt-study"
    assert logged["exit_code"] == 0
    assert logged["config"]["job_id"] == job_id and logged["config"]["recipe.lr"] == result["config"]["recipe"]["lr"]
    for metric in ("top1", "many", "medium", "few", "mean_class_acc"):
        assert logged["summary"][f"test/{metric}"] == result["metrics"]["test"][metric]
    assert logged["summary"]["status"] == "ok"
    epochs = [row["epoch/loss"] for row in logged["history"] if "epoch/loss" in row]
    assert epochs == [h["loss"] for h in result["history"]]
    steps = [row["_step"] for row in logged["history"] if "step/loss" in row]
    assert len(steps) > 2 and steps == list(range(len(steps)))


def test_wandb_mode_offline_is_honoured_and_online_without_a_key_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    zero_shot = [*TRACKED, "--regimes", "zero_shot", "--log", "wandb"]
    assert main([*zero_shot, "--out", str(tmp_path / "online")]) == 2
    err = capsys.readouterr().err
    assert "ltbench: error: --log wandb has no W&B API key" in err and "--wandb-offline" in err
    assert not (tmp_path / "online" / "jobs").exists()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([*zero_shot, "--out", str(tmp_path / "offline")]) == 0
    [job_id] = job_results(tmp_path / "offline")
    assert offline_run(tmp_path / "offline", job_id)["summary"]["test/top1"] == \
        job_results(tmp_path / "offline")[job_id]["metrics"]["test"]["top1"]
