"""Performance benchmark: `python -m bench.perf` (or `run_bench.py perf`) measures what each regime costs.

`regimes` measures every regime (training and evaluation speed, memory, FLOPs, MFU) and the cached
linear-probe epoch, `loader` the DataLoader's images/s on iNaturalist-size JPEGs, `cli` parses the options
and prints the table (`main`).
"""
from bench.perf.cli import COLUMNS, format_table, main
from bench.perf.loader import LoaderConfig, against_training, format_loader, measure_loader
from bench.perf.regimes import PerfConfig, Setting, cached_probe_epoch, matmul_peak_flops, measure_regime, run

__all__ = ["COLUMNS", "LoaderConfig", "PerfConfig", "Setting", "against_training", "cached_probe_epoch",
           "format_loader", "format_table", "main", "matmul_peak_flops", "measure_loader", "measure_regime", "run"]
