"""Ablation grids: a YAML/JSON file of override axes, expanded into jobs and recorded for the report.

    name: lift_plus_components      # what the report calls it
    metric: few                     # top1 | many | medium | few | mean_class_acc
    regime: lift_plus               # or an axis `regime: [linear_probe, lift_plus]`
    axes:                           # every combination is one job per data set and seed
      classifier_init: [semantic, random]
      tte: [true, false]

An axis `DATASET.FIELD` (e.g. `cifar100_lt.imbalance_ratio: [10, 50, 100, 200]`) varies a data set's option
instead of a recipe field: each point's jobs get that data set's config with the point's value, so their own
split, fingerprint and job id. A grid with such axes runs only on the data sets they name (each must be in
--datasets, bench.plan); a grid without them runs on every data set of the run.

Nothing in a file is dropped without a word: an unknown or repeated key, an axis without values, a value listed
twice and a name that is not a plain file name are errors naming the file, and two grids of one run may not
share a name (their records and heatmaps would overwrite each other).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.data import DATASETS, dataset_config
from bench.data.registry import registered_name
from bench.overrides import OverrideError, apply_overrides
from bench.registry import REGIMES

METRICS = ("top1", "many", "medium", "few", "mean_class_acc")
KEYS = ("name", "metric", "regime", "axes")  # what a grid file may hold


def data_axis(name: str) -> tuple[str, str] | None:
    """(data set, field) of a data-set axis `DATASET.FIELD`; None for a recipe axis (a recipe field has no dot)."""
    dataset, dot, field = name.partition(".")
    return (dataset, field) if dot else None


@dataclass(frozen=True)
class Grid:
    name: str
    metric: str
    axes: dict[str, list]  # axis -> values (as written in the file); `regime` may be an axis, `DATASET.FIELD` too

    @property
    def datasets(self) -> tuple[str, ...]:
        """The data sets its data-set axes name, in file order; none: it runs on every data set of the run."""
        return tuple(dict.fromkeys(data_axis(name)[0] for name in self.axes if data_axis(name)))

    def runs_on(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets

    def points(self, dataset: str | None = None) -> list[dict]:
        """Every combination of the axes; on `dataset`, of the recipe axes and that data set's own axes only."""
        axes = {name: values for name, values in self.axes.items()
                if dataset is None or data_axis(name) is None or data_axis(name)[0] == dataset}
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def recipe_values(point: dict) -> dict:
    """The point's recipe fields (less the regime and the data-set values) as --set writes them."""
    return {k: value_text(v) for k, v in point.items() if k != "regime" and data_axis(k) is None}


def data_values(point: dict, dataset: str) -> dict[str, str]:
    """The point's values of `dataset`'s options (field -> as --set writes it)."""
    return {data_axis(k)[1]: value_text(v) for k, v in point.items() if (data_axis(k) or ("",))[0] == dataset}


def value_text(value) -> str:
    """A value as --set writes it (YAML reads `true` as a bool)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class DuplicateKeyError(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last one without a word)."""

    def construct_mapping(self, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key, line = self.construct_object(key_node), key_node.start_mark.line + 1
                if key in lines:
                    raise DuplicateKeyError(f"key {key!r} is given twice (lines {lines[key]} and {line}); keep one")
                lines[key] = line
        return super().construct_mapping(node, deep)


def _read(path: Path) -> dict:
    """The file's mapping, with only the keys a grid file has."""
    try:
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # JSON is YAML too
    except DuplicateKeyError as exc:
        raise OverrideError(f"grid file {path}: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OverrideError(f"grid file {path}: cannot read it ({' '.join(str(exc).split())})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("axes"), dict) or not spec["axes"]:
        raise OverrideError(f"grid file {path}: expected a mapping with 'axes: {{FIELD: [values]}}'")
    unknown = sorted(map(str, set(spec) - set(KEYS)))
    if unknown:
        raise OverrideError(f"grid file {path}: unknown key {unknown[0]!r}; a grid file has {', '.join(KEYS)}")
    return spec


def _axis(path: Path, name: str, values) -> list:
    """An axis's values (a single value is an axis of one), none missing and none twice."""
    values = values if isinstance(values, list) else [] if values is None else [values]
    if not values:
        raise OverrideError(f"grid file {path}: axis {name!r} has no values; list them, e.g. {name}: [a, b] "
                            f"([null] for the automatic value)")
    texts = [value_text(value) for value in values]
    twice = next((text for i, text in enumerate(texts) if text in texts[:i]), None)
    if twice is not None:
        raise OverrideError(f"grid file {path}: axis {name!r} lists {twice} twice; list each value once")
    return values


def _axes(path: Path, spec: dict) -> dict[str, list]:
    """The axes, the regime first (from `regime: NAME` or a `regime` axis, not both)."""
    axes = {str(name): _axis(path, str(name), values) for name, values in spec["axes"].items()}
    for name in filter(data_axis, axes):
        _check_data_axis(path, name)
    if "regime" in spec:
        if "regime" in axes:
            raise OverrideError(f"grid file {path}: names the regime twice ('regime:' and a 'regime' axis); keep one")
        if not isinstance(spec["regime"], str):
            raise OverrideError(f"grid file {path}: 'regime:' takes one name; for several use a 'regime' axis")
        axes = {"regime": [spec["regime"]], **axes}
    if "regime" not in axes:
        raise OverrideError(f"grid file {path}: name the regime ('regime: lift_plus' or a 'regime' axis)")
    return axes


def _check_data_axis(path: Path, name: str) -> None:
    """A data-set axis names a data set and an option it has that a grid may vary."""
    dataset, field = data_axis(name)
    if dataset not in DATASETS.names():
        raise OverrideError(f"grid file {path}: axis {name!r}: {dataset!r} is not a data set (a recipe axis is the "
                            f"field alone, e.g. lr; a data-set axis DATASET.FIELD); data sets: "
                            f"{', '.join(DATASETS.names())}")
    default = dataset_config(dataset)
    if field == "epochs":
        raise OverrideError(f"grid file {path}: axis {name!r}: the epochs are a recipe setting; vary them with an "
                            f"axis 'epochs'")
    if field in getattr(default, "named_by", ()):
        base = registered_name(type(default).__mro__[1])
        named = getattr(default, field)
        named = f"{named:g}" if isinstance(named, float) else value_text(named)
        raise OverrideError(f"grid file {path}: axis {name!r}: {dataset} is {field}={named} by its name, so a grid "
                            f"cannot vary it; vary {base}.{field} instead")


def _name(path: Path, spec: dict) -> str:
    """The grid's name, which names its record and heatmap files: a plain file name."""
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or not name or name != Path(name).name or name.startswith("."):
        raise OverrideError(f"grid file {path}: name {name!r} must be a plain file name (it names the grid's "
                            f"record and heatmap), e.g. name: {path.stem}")
    return name


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    spec = _read(path)
    axes = _axes(path, spec)
    metric = spec.get("metric", "top1")
    if metric not in METRICS:
        raise OverrideError(f"grid file {path}: metric {metric!r} is not one of {', '.join(METRICS)}")
    grid = Grid(_name(path, spec), metric, axes)
    for point in grid.points():
        recipe_for(grid, point)  # validates names and values now, before any job runs
    for dataset in grid.datasets:
        for point in grid.points(dataset):
            data_config_for(grid, dataset, point)
    return grid


def load_grids(paths: list[str] | tuple[str, ...]) -> list[Grid]:
    """A run's grids, each name once: two files of one name would write one record and one heatmap."""
    grids: list[Grid] = []
    files: dict[str, Path] = {}
    for path in map(Path, paths):
        grid = load_grid(path)
        if grid.name in files:
            same = files[grid.name].resolve() == path.resolve()
            raise OverrideError(f"--grid {path} is given twice" if same else
                                f"grid files {files[grid.name]} and {path} are both named {grid.name!r}: "
                                f"give one of them another 'name:'")
        files[grid.name] = path
        grids.append(grid)
    return grids


def recipe_for(grid: Grid, point: dict, base=None):
    """The point's recipe: its axes applied to `base` (default: the regime's own recipe)."""
    regime = REGIMES.get(point["regime"])
    return apply_overrides(base or regime.recipe, recipe_values(point), f"grid {grid.name} ({point['regime']})",
                           option="")


def data_config_for(grid: Grid, dataset: str, point: dict):
    """The point's config of `dataset`: its data-set axes applied to the data set's defaults (bench.plan applies
    them over --imbalance-ratio and --set)."""
    return apply_overrides(dataset_config(dataset), data_values(point, dataset), f"grid {grid.name} ({dataset})",
                           option="")


def grid_record(grid: Grid, members: list[tuple[dict, str, str, int]]) -> str:
    """JSON for runs/NAME/grids/<name>.json: the axes and, per point, data set, seed and job id."""
    return json.dumps({**dataclasses.asdict(grid), "jobs": [
        {"point": {k: value_text(v) for k, v in point.items()}, "dataset": dataset, "job_id": job_id, "seed": seed}
        for point, dataset, job_id, seed in members]}, indent=1)
