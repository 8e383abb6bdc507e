"""The Ray backend against a real one-node cluster (CPUs only) that uses token authentication, which Ray turns
on for clusters started where a token exists (a fresh install's `ray.init()` writes ~/.ray/auth_token). Each
command runs as its own process with the environment a user's shell would give it: Ray reads its
authentication settings once per process."""
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.scheduler.ray_backend import unschedulable

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[2]
AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
RUN = ["--datasets", "synthetic_lt", "--model", "ltbench-tiny", "--pretrained", "none", "-q", "--regimes",
       "zero_shot", "linear_probe", "--epochs", "1", "--no-train-eval", "--no-report", "--backend", "ray"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(token: str | None) -> dict[str, str]:
    """This process's environment without Ray's authentication settings; with `token`, the cluster's."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH}
    env.update(HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    if token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    return env


@pytest.fixture(scope="module")
def ray_cluster():
    """(address, token) of a one-node Ray cluster on loopback with 2 CPUs, token authentication on, stopped
    afterwards."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    port, token = _free_port(), uuid.uuid4().hex
    env = _environment(token)
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    yield f"127.0.0.1:{port}", token
    subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def ltbench(args: list[str], token: str | None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_bench.py", *args], cwd=REPO, capture_output=True, text=True,
                          env={**_environment(token), **env}, timeout=400)


def test_ray_backend_end_to_end(ray_cluster, tmp_path):
    address, token = ray_cluster
    args = [*RUN, "--out", str(tmp_path), "--ray-address", address, "--ray-gpus-per-job", "0"]
    done = ltbench(args, token)
    assert done.returncode == 0, done.stderr
    results = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*.json")]
    assert sorted(r["config"]["regime"] for r in results) == ["linear_probe", "zero_shot"]
    assert {r["status"] for r in results} == {"ok"} and {r["runtime"]["device"] for r in results} == {"cpu"}
    assert len({r["split_fingerprint"] for r in results}) == 1
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")}
    assert ltbench(args, token).returncode == 0  # same store: nothing is rerun
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")} == stamps


@pytest.mark.parametrize("options, message", [
    ([], "the Ray cluster has 0 GPUs, and each job's task asks for 1 GPU, 8 CPUs: use --ray-gpus-per-job 0 for "
         "CPU tasks or connect to a GPU cluster with --ray-address"),
    (["--ray-gpus-per-job", "0", "--ray-cpus-per-job", "3"],
     "no node of the Ray cluster has more than 2 CPUs, and each job's task asks for 3 CPUs: use "
     "--ray-cpus-per-job 2 or less"),
])
def test_a_task_no_node_can_ever_run_is_refused_before_training(ray_cluster, tmp_path, options, message):
    """Ray would queue it forever without a word; the cluster's totals, not what is free, decide."""
    address, token = ray_cluster
    done = ltbench([*RUN, "--out", str(tmp_path / "run"), "--ray-address", address, *options], token)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "jobs").exists()  # nothing trained


def test_a_driver_without_the_clusters_token_is_told_how_to_give_it(ray_cluster, tmp_path):
    address, _ = ray_cluster
    done = ltbench([*RUN, "--out", str(tmp_path / "run"), "--ray-address", address, "--ray-gpus-per-job", "0"],
                   None, RAY_gcs_server_port_wait_time_s="2")  # Ray's retries, 20 s by default
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("ltbench: error:")]
    assert len(error) == 1 and f"--ray-address {address}: the Ray cluster there did not accept" in error[0]
    assert "RAY_AUTH_MODE=token" in error[0] and "RAY_AUTH_TOKEN" in error[0]


CPU_NODE, GPU_NODE = {"CPU": 16.0, "memory": 6e10}, {"CPU": 4.0, "GPU": 2.0}


@pytest.mark.parametrize("request_, nodes, expected", [
    ({"GPU": 1, "CPU": 4}, [CPU_NODE, GPU_NODE], None),  # the GPU node fits
    ({"GPU": 0, "CPU": 16}, [CPU_NODE, GPU_NODE], None),  # 0 asks for nothing
    ({"GPU": 1, "CPU": 1}, [CPU_NODE], "the Ray cluster has 0 GPUs"),
    ({"GPU": 4, "CPU": 1}, [CPU_NODE, GPU_NODE], "no node of the Ray cluster has more than 2 GPUs, and each job's "
                                                 "task asks for 4 GPUs, 1 CPU: use --ray-gpus-per-job 2 or less"),
    ({"GPU": 1, "CPU": 8}, [CPU_NODE, GPU_NODE], "no node of the Ray cluster has 1 GPU, 8 CPUs at once, which each "
                                                 "job's task asks for (its nodes: 0 GPUs, 16 CPUs; 2 GPUs, 4 CPUs)"),
    ({"GPU": 0, "CPU": 1}, [], "the Ray cluster has 0 CPUs"),
])
def test_what_no_node_can_ever_run_is_named_with_the_fix(request_, nodes, expected):
    problem = unschedulable(request_, nodes)
    assert problem == expected if expected is None else expected in problem
