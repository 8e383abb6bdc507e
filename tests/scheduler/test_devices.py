import threading
import time

import pytest

from bench.scheduler import device_slots, run_local
from bench.scheduler.devices import loader_workers_per_job, parse_gpus
from tests.conftest import make_job


def test_slots_from_gpus_and_jobs_per_gpu():
    assert device_slots("auto", None, 1, 1, available=[0, 1]) == ["cuda:0", "cuda:1"]
    assert device_slots("auto", [1], 2, 1, available=[0, 1]) == ["cuda:1", "cuda:1"]
    assert device_slots("auto", None, 1, 3, available=[]) == ["cpu"] * 3  # no GPU: CPU with --workers
    assert device_slots("cpu", None, 1, 2, available=[0, 1]) == ["cpu", "cpu"]
    assert device_slots("auto", [], 1, 1, available=[0]) == ["cpu"]  # --gpus none
    assert device_slots("cuda:1", None, 2, 1, available=[0, 1]) == ["cuda:1", "cuda:1"]
    with pytest.raises(ValueError, match="visible GPUs are 0, 1"):
        device_slots("auto", [0, 4], 1, 1, available=[0, 1])


@pytest.mark.parametrize("device, gpus, available, message", [
    ("cuda", None, [], "--device cuda: no GPU is visible on this machine; use --device cpu"),
    ("cuda:0", None, [], "--device cuda:0: there is no GPU 0 on this machine \\(visible GPUs: none\\)"),
    ("cuda:3", None, [0, 1], "no GPU 3 on this machine \\(visible GPUs: 0, 1\\)"),
    ("auto", [7], [], "--gpus 7: no GPU is visible on this machine"),
    ("cpu", [0], [0], "--device cpu runs on the CPU"),
    ("cuda:0", [1], [0, 1], "give one of them"),
    ("gpu", None, [0], "unknown --device 'gpu'"),
])
def test_a_device_that_is_not_there_is_an_error_naming_the_option(device, gpus, available, message):
    with pytest.raises(ValueError, match=message):
        device_slots(device, gpus, 1, 1, available=available)


def test_gpu_list_parsing():
    assert parse_gpus("0, 2,3") == [0, 2, 3] and parse_gpus(None) is None and parse_gpus("none") == []
    with pytest.raises(ValueError, match="expected GPU indices"):
        parse_gpus("gpu0")


def test_gpu_jobs_share_the_hosts_cores_as_loader_workers_and_cpu_jobs_load_in_process():
    assert loader_workers_per_job(["cpu", "cpu"], cores=16) == 0
    assert loader_workers_per_job(["cuda:0"], cores=16) == 16
    assert loader_workers_per_job(["cuda:0", "cuda:0", "cuda:1", "cuda:1"], cores=16) == 4
    assert loader_workers_per_job(["cuda:0"] * 8, cores=4) == 1


@pytest.mark.parametrize("jobs_per_gpu", [1, 2])
def test_no_device_ever_holds_more_jobs_than_its_slots(jobs_per_gpu):
    slots = device_slots("auto", None, jobs_per_gpu, 1, available=[0, 1, 2])  # three fake GPUs
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def fake_launch(job, slot, index):
        with lock:
            running[slot] = running.get(slot, 0) + 1
            peak[slot] = max(peak.get(slot, 0), running[slot])
        time.sleep(0.02 + 0.01 * (job.seed % 3))
        with lock:
            running[slot] -= 1
        return {"job_id": job.job_id, "slot": slot}

    jobs = [make_job("linear_probe", seed=s) for s in range(24)]
    results = list(run_local(jobs, "unused", slots, launch=fake_launch))
    assert sorted(r["job_id"] for r in results) == sorted(j.job_id for j in jobs)  # every job ran once
    assert set(peak) == {"cuda:0", "cuda:1", "cuda:2"}  # all devices used
    assert max(peak.values()) == jobs_per_gpu
