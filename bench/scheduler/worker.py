"""`python -m bench.scheduler.worker RUN_DIR JOB_FILE`: run one pickled job (the local backend's child process)."""
import logging
import pickle
import sys

from bench.scheduler.execute import execute


def main(run_dir: str, job_file: str) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    with open(job_file, "rb") as fh:
        job = pickle.load(fh)
    return 0 if execute(job, run_dir)["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
