"""Thin entry point: `python run_bench.py --help`."""
from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
