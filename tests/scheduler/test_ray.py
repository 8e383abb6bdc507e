import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

ray = pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real one-node Ray cluster on loopback with CPU resources only, stopped afterwards."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    yield f"127.0.0.1:{port}"
    if ray.is_initialized():
        ray.shutdown()
    subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_backend_end_to_end(ray_cluster, tmp_path):
    args = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "-q",
            "--regimes", "zero_shot", "linear_probe", "--epochs", "1", "--no-train-eval", "--out", str(tmp_path),
            "--backend", "ray", "--ray-address", ray_cluster, "--ray-gpus-per-job", "0"]
    assert main(args) == 0
    results = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*.json")]
    assert sorted(r["config"]["regime"] for r in results) == ["linear_probe", "zero_shot"]
    assert {r["status"] for r in results} == {"ok"} and {r["runtime"]["device"] for r in results} == {"cpu"}
    assert len({r["split_fingerprint"] for r in results}) == 1
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")}
    assert main(args) == 0  # same store: nothing is rerun
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")} == stamps
