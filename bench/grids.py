"""Ablation grids: a YAML/JSON file of override axes, expanded into jobs and recorded for the report.

    name: lift_plus_components      # what the report calls it
    metric: few                     # top1 | many | medium | few | mean_class_acc
    regime: lift_plus               # or an axis `regime: [linear_probe, lift_plus]`
    axes:                           # every combination is one job per data set and seed
      classifier_init: [semantic, random]
      tte: [true, false]
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.overrides import OverrideError, apply_overrides
from bench.registry import REGIMES

METRICS = ("top1", "many", "medium", "few", "mean_class_acc")


@dataclass(frozen=True)
class Grid:
    name: str
    metric: str
    axes: dict[str, list]  # axis -> values (as written in the file); `regime` may be an axis

    def points(self) -> list[dict]:
        return [dict(zip(self.axes, values)) for values in itertools.product(*self.axes.values())]


def value_text(value) -> str:
    """A value as --set writes it (YAML reads `true` as a bool)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise OverrideError(f"grid file {path}: cannot read it ({exc})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("axes"), dict) or not spec["axes"]:
        raise OverrideError(f"grid file {path}: expected a mapping with 'axes: {{FIELD: [values]}}'")
    axes = {str(k): (v if isinstance(v, list) else [v]) for k, v in spec["axes"].items()}
    if "regime" in spec:
        axes = {"regime": [spec["regime"]], **axes}
    if "regime" not in axes:
        raise OverrideError(f"grid file {path}: name the regime ('regime: lift_plus' or a 'regime' axis)")
    metric = spec.get("metric", "top1")
    if metric not in METRICS:
        raise OverrideError(f"grid file {path}: metric {metric!r} is not one of {', '.join(METRICS)}")
    grid = Grid(str(spec.get("name", path.stem)), metric, axes)
    for point in grid.points():
        recipe_for(grid, point)  # validates names and values now, before any job runs
    return grid


def recipe_for(grid: Grid, point: dict, base=None):
    """The point's recipe: its axes applied to `base` (default: the regime's own recipe)."""
    regime = REGIMES.get(point["regime"])
    changes = {k: value_text(v) for k, v in point.items() if k != "regime"}
    return apply_overrides(base or regime.recipe, changes, f"grid {grid.name} ({point['regime']})")


def grid_record(grid: Grid, members: list[tuple[dict, str, str, int]]) -> str:
    """JSON for runs/NAME/grids/<name>.json: the axes and, per point, data set, seed and job id."""
    return json.dumps({**dataclasses.asdict(grid), "jobs": [
        {"point": {k: value_text(v) for k, v in point.items()}, "dataset": dataset, "job_id": job_id, "seed": seed}
        for point, dataset, job_id, seed in members]}, indent=1)
