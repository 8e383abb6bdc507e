"""Derived jobs: remedies applied to finished parent jobs (WiSE-FT, model soups, post-hoc long-tail corrections),
each an ordinary job with its own id, run after its parents from what they saved (bench.derived.base)."""
from bench.registry import REMEDIES

from . import posthoc, soup, wise  # noqa: F401  (registers the remedies)
from .base import DerivedJobError, Remedy, register_remedy


def run_derived(job):
    """Run a derived job's remedy in its run folder: the JobResult the engine's `train` returns for it."""
    from bench.training.context import JobContext

    ctx = JobContext.create(job)
    if ctx.store is None:
        raise DerivedJobError(f"{job.label}: a derived job reads its parents' files and needs the run folder "
                              f"(Runtime.run_dir)")
    return REMEDIES.get(job.derived.method)().run(job, ctx)


__all__ = ["DerivedJobError", "Remedy", "register_remedy", "run_derived"]
