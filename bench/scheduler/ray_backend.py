"""The Ray backend: each job is a Ray task asking for one GPU (or one CPU on CPU runs); same result store.

`connect` joins (or starts) the cluster before any training and refuses, with the fix, what would otherwise
hang: nothing answering at the address, a cluster that does not accept this driver, or one on which no node
can ever run a job's task (Ray would wait for it forever). Workers write results, logs and checkpoints under
the run folder, which should be on a file system they share with the driver; the driver also saves every
returned result, so the table is complete either way.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterator

from bench.job_result import JobFailure, JobOutcome
from bench.messages import first_line
from bench.results import RunStore
from bench.training import Job

from .execute import execute, save_in_driver

CONNECT_TIMEOUT_S = 10.0  # a head that does not accept a TCP connection within this is not there
AUTO_ADDRESSES = ("auto", "local")  # Ray finds (or refuses) these itself, at once
TOKEN_AUTH = "https://docs.ray.io/en/latest/ray-security/token-auth.html"
PASSED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE")  # the driver's Hugging Face settings, to the workers
SHOWN_NODES = 5


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the jobs (Ray missing, unreachable, refused, too small); the message says
    how to fix it."""


def task_resources(gpus_per_job: float, cpus_per_job: float) -> dict[str, float]:
    """What one job's Ray task asks for, in Ray's resource names."""
    return {"GPU": gpus_per_job, "CPU": cpus_per_job}


def _amount(amount: float, name: str) -> str:
    return f"{amount:g} {name}{'' if amount == 1 else 's'}"


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(_amount(amount, name) for name, amount in resources.items())


def _fix(name: str, most: float) -> str:
    if name == "GPU" and most == 0:
        return "use --ray-gpus-per-job 0 for CPU tasks or connect to a GPU cluster with --ray-address"
    if name == "GPU":
        return f"use --ray-gpus-per-job {most:g} or less"
    if name == "CPU":
        return (f"use --ray-cpus-per-job {most:g} or less (GPU tasks use them as DataLoader workers), or add "
                f"larger nodes")
    return f"ask for {most:g} {name} or less"


def unschedulable(request: dict[str, float], nodes: list[dict[str, float]]) -> str | None:
    """Why no node can ever run a task asking for `request` (resource name -> amount), given each node's
    total resources (not what is free now); None when some node can. A task runs on one node, so each
    resource is checked against the largest node, and then all of them against each node."""
    asked = {name: amount for name, amount in request.items() if amount > 0}
    if any(all(node.get(name, 0.0) >= amount for name, amount in asked.items()) for node in nodes):
        return None
    for name, amount in asked.items():
        most = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if most < amount:
            where = "the Ray cluster has" if most == 0 else "no node of the Ray cluster has more than"
            return f"{where} {_amount(most, name)}, and each job's task asks for {_amounts(asked)}: {_fix(name, most)}"
    shapes = list(dict.fromkeys(_amounts({name: node.get(name, 0.0) for name in asked}) for node in nodes))
    more = len(shapes) - SHOWN_NODES
    listed = "; ".join(shapes[:SHOWN_NODES]) + (f"; {more} more" if more > 0 else "")
    return (f"no node of the Ray cluster has {_amounts(asked)} at once, which each job's task asks for (its "
            f"nodes: {listed}): lower --ray-gpus-per-job or --ray-cpus-per-job to what one node has")


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--backend ray needs Ray: pip install 'ltbench[ray]' (or pip install ray)") from None
    return ray


def _head(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r}: expected the HOST:PORT that `ray start --head` prints "
                           f"(or ray://HOST:PORT, or auto)")
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """Ray itself retries an address where nothing answers for minutes, printing only its own warnings."""
    try:
        socket.create_connection(_head(address), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); start "
                           f"one with `ray start --head` on that machine, or leave out --ray-address to start one "
                           f"for this run") from None


def _not_joined(address: str | None, exc: Exception, auth_error: type | tuple) -> str:
    """The one line that says why ray.init failed, with the fix for Ray's token authentication, which refuses a
    driver without the cluster's token after 20 s of retries that blame a crashed instance."""
    if isinstance(exc, auth_error):
        return (f"the Ray cluster {'at ' + address + ' ' if address else ''}uses token authentication and this "
                f"driver has no token: put the cluster's token in ~/.ray/auth_token or in RAY_AUTH_TOKEN "
                f"({TOKEN_AUTH})")
    reason = f"{type(exc).__name__}: {first_line(str(exc))}"
    line = (f"--ray-address {address}: the Ray cluster there did not accept this driver ({reason})" if address else
            f"cannot start or join a Ray cluster on this machine ({reason})")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return f"{line}; check that RAY_AUTH_TOKEN (or ~/.ray/auth_token) holds the cluster's token ({TOKEN_AUTH})"
    return (f"{line}; if the cluster uses token authentication (Ray turns it on for a cluster started where a token "
            f"exists, such as ~/.ray/auth_token), run with RAY_AUTH_MODE=token and its token in ~/.ray/auth_token "
            f"or RAY_AUTH_TOKEN ({TOKEN_AUTH})")


def node_resources(ray) -> list[dict[str, float]]:
    """Total resources of every live node, and of every node type an autoscaler may still add (its cluster
    config, where Ray publishes one)."""
    nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001 - no autoscaler, or a Ray without this (private) call: live nodes only
        config = None
    for group in getattr(config, "node_group_configs", None) or ():
        if group.max_count != 0:
            nodes.append(dict(group.resources))
    return nodes


def connect(address: str | None, gpus_per_job: float, cpus_per_job: float) -> None:
    """Join the Ray cluster at `address` (None: start a local one), unless this process has joined one, and
    check that some node can ever run one job's task. Raises ClusterError with the fix otherwise, leaving
    no Ray running that it started."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        if address and address not in AUTO_ADDRESSES:
            _check_reachable(address)
        passed = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": passed})
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds here; each is one line
            auth_error = getattr(ray.exceptions, "AuthenticationError", ())  # Ray with token authentication
            raise ClusterError(_not_joined(address, exc, auth_error)) from None
    problem = unschedulable(task_resources(gpus_per_job, cpus_per_job), node_resources(ray))
    if problem:
        if started:
            ray.shutdown()
        raise ClusterError(problem)


def run_ray(jobs: list[Job], run_dir: str | Path, gpus_per_job: float, cpus_per_job: float = 1.0
            ) -> Iterator[JobOutcome]:
    """Run every job as a Ray task on the cluster `connect` joined; yield each outcome as it finishes."""
    import ray

    store = RunStore(run_dir)
    task = ray.remote(num_gpus=gpus_per_job, num_cpus=cpus_per_job, max_retries=0)(execute)
    pending = {task.remote(job, str(store.run_dir)): job for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # the worker died (node lost, killed): record it like any failure
            result = JobFailure.of(job, f"Ray task failed: {type(exc).__name__}: {first_line(str(exc))}",
                                   traceback=str(exc))
        yield save_in_driver(result, store)
