"""`python -m bench.scheduler.worker RUN_DIR PARENT_PID < JOB`: run one pickled job (the local backend's child)."""
import logging
import pickle
import signal
import sys

from bench.scheduler.execute import execute
from bench.scheduler.signals import die_with_parent


def main(run_dir: str, parent_pid: str) -> int:
    die_with_parent(int(parent_pid))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    job = pickle.load(sys.stdin.buffer)
    try:
        return 0 if execute(job, run_dir).status == "ok" else 1
    except KeyboardInterrupt:  # the driver stopped the run; the job's epoch checkpoint stays for the rerun
        return 130
    finally:  # the job is saved or stopped: a SIGTERM during the interpreter's exit ends it quietly, not with a
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # KeyboardInterrupt traceback from an exit finalizer


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
