"""Stopping a run cleanly: SIGTERM acts like Ctrl-C, and child job processes never outlive the run.

Children run in their own process group (a terminal's Ctrl-C reaches only the driver, which stops them),
and ask the kernel to be sent SIGTERM when the driver dies, even by SIGKILL (Linux PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

_CHILDREN: set[subprocess.Popen] = set()
EXIT_GRACE_S = 10  # seconds a stopped child may take to unwind before it is killed
_LOCK = threading.Lock()
PR_SET_PDEATHSIG = 1


def track(process: subprocess.Popen) -> None:
    with _LOCK:
        _CHILDREN.add(process)


def untrack(process: subprocess.Popen) -> None:
    with _LOCK:
        _CHILDREN.discard(process)


def _signal_children(signum: int) -> list[subprocess.Popen]:
    with _LOCK:
        children = list(_CHILDREN)
    for process in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
    return children


def stop_children(grace_s: float = 10.0) -> None:
    """SIGTERM every running child's process group, then SIGKILL what is left after `grace_s`."""
    children = _signal_children(signal.SIGTERM)
    for process in children:
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _interrupt_run(signum, frame):
    """The children are told first, so that nothing (joblib's pool) waits on a job that is still running."""
    _signal_children(signal.SIGTERM)
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def terminate_on_signals():
    """In the main thread: SIGINT (Ctrl-C) and SIGTERM stop every child job process and raise
    KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _interrupt_run) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        stop_children()
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt_child(signum, frame):
    """A stopped child unwinds (its locks and temporary files are released), but is killed by SIGALRM if that
    takes longer than EXIT_GRACE_S."""
    signal.alarm(EXIT_GRACE_S)
    raise KeyboardInterrupt(f"signal {signum}")


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent(parent_pid: int) -> None:
    """In a child job process: SIGTERM (raised here as KeyboardInterrupt) when the driver dies, whatever
    killed it: from the kernel (Linux PR_SET_PDEATHSIG), and from a watcher thread that notices the new
    parent where that signal is not available; exit at once if the driver is already gone."""
    signal.signal(signal.SIGTERM, _interrupt_child)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(130)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()
