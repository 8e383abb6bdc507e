"""ltbench: fine-tuning regimes of CLIP models on long-tail classification, compared on identical splits."""
__version__ = "0.1.0"

__all__ = ["load_job"]


def __getattr__(name: str):
    """`bench.load_job` (bench.weights), imported on first use: `import bench` stays light for the CLI."""
    if name == "load_job":
        from bench.weights import load_job

        return load_job
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
