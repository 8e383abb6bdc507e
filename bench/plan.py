"""Planning: what a run asks for (`Selection`) expanded into the jobs it runs (`Plan`), every recipe resolved.

A job's recipe is its regime's defaults, then the protocol's values, then `--set` (`all.FIELD`, then
`REGIME.FIELD`) and `--epochs`; a grid point's own values win over all of these for the fields its grid varies,
and so do a selection candidate's (`--select FIELD=v1,v2`: each regime's main job becomes one job per candidate,
picked later on the validation split, see reports.selection). Each job records where every value that is not a
default came from (`hparam_sources`), for the report.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from bench.data import DATASETS, dataset_config
from bench.grids import METRICS, grid_record, load_grid, value_text
from bench.job_result import recipe_id
from bench.manifest import ManifestJob, dataset_key
from bench.models.backbone import BUNDLED, DEMO_MODEL, uses_quick_gelu
from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.protocols import PROTOCOLS, REFERENCE, Protocol
from bench.registry import REGIMES
from bench.training import Job, Runtime
from bench.training.recipe import Recipe

ALL_REGIMES = "all"  # --regimes all; --set all.FIELD=VALUE: every selected regime that has FIELD
DEMO_DATASET = "demo_lt"
SELECTION_FILE = "selection.json"  # in the run folder: the --select candidates and the metric that picks
DEFAULT_MODEL, DEFAULT_PRETRAINED = "ViT-B-16", "openai"

Overrides = dict[str, dict[str, str]]  # scope -> field -> value as written, from parse_assignments


@dataclass(frozen=True)
class Selection:
    """What a run asks for, in the command line's terms but free of argparse. `model` and `pretrained` left
    as None take the defaults: the bundled demo CLIP for a demo-only run, else ViT-B/16 with OpenAI weights."""

    datasets: tuple[str, ...] = (DEMO_DATASET,)
    regimes: tuple[str, ...] = ()  # names or "all"; none: all, or only the grids' regimes when there are grids
    grids: tuple[str, ...] = ()  # grid files (bench.grids)
    model: str | None = None
    pretrained: str | None = None
    seeds: tuple[int, ...] = (0,)
    epochs: int | None = None  # of every regime that trains
    imbalance_ratio: float | None = None  # of the data sets that have one
    protocol: str = REFERENCE.name
    quick_gelu: bool | None = None  # None: the activation the weights were trained with
    overrides: tuple[str, ...] = ()  # --set SCOPE.FIELD=VALUE
    select: tuple[str, ...] = ()  # --select FIELD=V1,V2,...: candidates picked on the validation split
    select_metric: str = "mean_class_acc"  # --select-metric: the validation metric that picks

    def __post_init__(self):
        if self.model is None:
            demo_only = set(self.datasets) == {DEMO_DATASET}
            object.__setattr__(self, "model", DEMO_MODEL if demo_only else DEFAULT_MODEL)
        if self.pretrained is None:
            object.__setattr__(self, "pretrained", BUNDLED if self.model == DEMO_MODEL else DEFAULT_PRETRAINED)

    def regime_names(self) -> list[str]:
        """The regimes of the main jobs: `all` expanded, duplicates dropped, unknown names rejected."""
        requested = self.regimes or (() if self.grids else (ALL_REGIMES,))
        names = REGIMES.names() if ALL_REGIMES in requested else list(dict.fromkeys(requested))
        for name in names:
            REGIMES.get(name)  # unknown name -> UnknownNameError
        return names


@dataclass(frozen=True)
class Plan:
    """The jobs of a run (equal jobs once), its grids (name -> the JSON record for the run folder) and the ids
    of its main jobs (a regime's own recipe from --regimes, not only a grid variant; every --select candidate
    is one), and the JSON record of its --select candidates for the run folder (None without --select)."""

    jobs: list[Job]
    grids: dict[str, str]
    main_ids: set[str]
    selection: str | None = None

    @property
    def manifest(self) -> list[ManifestJob]:
        """The manifest's entry of each job, so that the report reads what was planned, not today's code."""
        grids_of: dict[str, list[str]] = {}
        for name, record in self.grids.items():
            for member in json.loads(record)["jobs"]:
                grids_of.setdefault(member["job_id"], []).append(name)
        return [ManifestJob(job_id=job.job_id, label=job.label, dataset=job.dataset, regime=job.regime,
                            seed=job.seed, recipe_id=recipe_id(job.config()), dataset_key=dataset_key(job.config()),
                            data_fingerprint=job.data_fingerprint, main=job.job_id in self.main_ids,
                            grids=tuple(grids_of.get(job.job_id, ())),
                            lightweight=REGIMES.get(job.regime).lightweight, protocol=job.protocol)
                for job in self.jobs]


def _recipe_fields(regime_name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(REGIMES.get(regime_name).recipe)}


def _checked_overrides(selection: Selection, regimes: list[str]) -> Overrides:
    """--set parsed, each scope a data set, a regime or `all`, and each `all.FIELD` a field of some regime in
    `regimes` (those of the main jobs and the grids): a typo fails before anything runs."""
    overrides = parse_assignments(list(selection.overrides))
    unknown = set(overrides) - set(DATASETS.names()) - set(REGIMES.names()) - {ALL_REGIMES}
    if unknown:
        raise OverrideError(f"--set scope {sorted(unknown)[0]!r} is neither a data set nor a regime nor "
                            f"{ALL_REGIMES!r}; valid: {', '.join(DATASETS.names() + REGIMES.names())}")
    for name in overrides.get(ALL_REGIMES, {}):
        if not any(name in _recipe_fields(regime) for regime in regimes):
            raise OverrideError(f"--set {ALL_REGIMES}.{name}: no selected regime has a setting {name!r}")
    return overrides


def _selection_axes(selection: Selection, regimes: list[str]) -> dict[str, list[str]]:
    """--select parsed into field -> candidate values as written, each field one of some selected regime's."""
    if selection.select_metric not in METRICS:
        raise OverrideError(f"--select-metric {selection.select_metric!r} is not one of {', '.join(METRICS)}")
    axes: dict[str, list[str]] = {}
    valid = sorted(set().union(*(_recipe_fields(regime) for regime in regimes)))
    for item in selection.select:
        name, sep, values = (part.strip() for part in item.partition("="))
        candidates = [value.strip() for value in values.split(",") if value.strip()]
        if not sep or not name or not candidates:
            raise OverrideError(f"--select {item!r}: expected FIELD=VALUE1,VALUE2,... (e.g. lr=0.005,0.01,0.02)")
        if name not in valid:
            raise OverrideError(f"--select {name}: no selected regime has a setting {name!r}; valid: "
                                f"{', '.join(valid)}")
        if name in axes:
            raise OverrideError(f"--select {name} is given twice; list all its candidates in one --select")
        axes[name] = list(dict.fromkeys(candidates))
    return axes


def _check_validation(data_config: Any, dataset: str) -> None:
    """Selection on test flatters: without a validation split there is nothing honest to select on."""
    if getattr(data_config, "has_validation", False):
        return
    hint = getattr(data_config, "validation_hint", None)
    how = f"ask for one with {hint(dataset)}" if hint else "it cannot have one; select on another data set"
    raise OverrideError(f"--select picks on a validation split, and {dataset} has none: {how}")


def _data_config(selection: Selection, dataset: str, overrides: Overrides) -> Any:
    """The data set's config with its --set options; --imbalance-ratio wins where the data set has one."""
    config = dataset_config(dataset, overrides.get(dataset))
    if selection.imbalance_ratio is not None and hasattr(config, "imbalance_ratio"):
        config = dataclasses.replace(config, imbalance_ratio=selection.imbalance_ratio)
    return config


def _check_imbalance_ratio(selection: Selection) -> None:
    """--imbalance-ratio that no selected data set can take is a mistake, not a no-op."""
    if selection.imbalance_ratio is not None and not any(
            hasattr(dataset_config(name), "imbalance_ratio") for name in selection.datasets):
        raise OverrideError(f"--imbalance-ratio: none of the data sets {', '.join(selection.datasets)} has an "
                            f"imbalance ratio (CIFAR-100-LT and the generated sets do)")


def _with_epochs(recipe: Recipe, regime: type, data_config: Any) -> Recipe:
    """Epochs left open take the data set's default; a regime that trains needs at least one."""
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
    if regime.trains and recipe.epochs < 1:
        raise OverrideError(f"{regime.name}.epochs={recipe.epochs}: a regime that trains needs at least 1 epoch")
    return recipe


@dataclass
class _Planner:
    """What one `plan` call shares: the parsed options and the jobs found so far, each kept once by id."""

    selection: Selection
    runtime: Runtime
    protocol: Protocol
    overrides: Overrides
    fingerprints: dict
    quick_gelu: bool
    jobs: dict[str, Job] = field(default_factory=dict)

    def recipe(self, dataset: str, data_config: Any, regime_name: str, point: dict | None = None,
               source: str = "") -> tuple[Recipe, dict[str, str]]:
        """The resolved recipe of a main job, or of a grid point or --select candidate (`point`: field -> value,
        whose own values win, recorded as coming from `source`), and its sources."""
        regime = REGIMES.get(regime_name)
        varied = set(point or {})
        recipe, sources = self.protocol.apply(dataset, regime_name, regime.recipe, regime.trains)
        shared = {k: v for k, v in self.overrides.get(ALL_REGIMES, {}).items() if k in _recipe_fields(regime_name)}
        own = {k: v for k, v in {**shared, **self.overrides.get(regime_name, {})}.items() if k not in varied}
        recipe = apply_overrides(recipe, own, regime_name)
        sources = {**sources, **dict.fromkeys(own, "--set")}
        if self.selection.epochs is not None and regime.trains and "epochs" not in varied:
            recipe = dataclasses.replace(recipe, epochs=self.selection.epochs)
            sources["epochs"] = "--epochs"
        if point:
            changes = {k: value_text(v) for k, v in point.items()}
            recipe = apply_overrides(recipe, changes, f"{source} ({regime_name})")
            sources.update(dict.fromkeys(varied, source))
        return _with_epochs(recipe, regime, data_config), sources

    def add(self, dataset: str, data_config: Any, regime_name: str, recipe: Recipe,
            sources: dict[str, str]) -> list[Job]:
        """One job per seed; a job equal to one already planned is that one."""
        added = []
        for seed in self.selection.seeds:
            job = Job(dataset, data_config, regime_name, recipe, self.selection.model, self.selection.pretrained,
                      seed, quick_gelu=self.quick_gelu, data_fingerprint=self.fingerprints.get(data_config, ""),
                      protocol=self.protocol.name, runtime=self.runtime, hparam_sources=sources)
            added.append(self.jobs.setdefault(job.job_id, job))
        return added


def plan(selection: Selection, runtime: Runtime, fingerprints: dict | None = None) -> Plan:
    """Data sets × regimes × seeds, plus every grid's points, with recipes and data options resolved.
    `fingerprints` maps each data set config to its data fingerprint (bench.data.check_images); without it
    the plan only checks names, options and grids, before any data is read."""
    regimes = selection.regime_names()
    grids = [load_grid(path) for path in selection.grids]
    overrides = _checked_overrides(selection, regimes + [name for grid in grids for name in grid.axes["regime"]])
    _check_imbalance_ratio(selection)
    planner = _Planner(selection, runtime, PROTOCOLS.get(selection.protocol), overrides, fingerprints or {},
                       uses_quick_gelu(selection.model, selection.pretrained, selection.quick_gelu))
    axes = _selection_axes(selection, regimes)
    main_ids: set[str] = set()
    members: dict[str, list] = {grid.name: [] for grid in grids}
    candidates: list[dict] = []
    for dataset in dict.fromkeys(selection.datasets):
        data_config = _data_config(selection, dataset, overrides)
        if axes:
            _check_validation(data_config, dataset)
        for regime_name in regimes:
            for point in _candidates(axes, regime_name):
                recipe, sources = planner.recipe(dataset, data_config, regime_name, point, "--select")
                for job in planner.add(dataset, data_config, regime_name, recipe, sources):
                    main_ids.add(job.job_id)
                    if point:
                        candidates.append({"dataset": dataset, "regime": regime_name, "seed": job.seed,
                                           "job_id": job.job_id, "point": point})
        for grid in grids:
            for point in grid.points():
                varied = {k: v for k, v in point.items() if k != "regime"}
                recipe, sources = planner.recipe(dataset, data_config, point["regime"], varied, f"grid {grid.name}")
                for job in planner.add(dataset, data_config, point["regime"], recipe, sources):
                    members[grid.name].append((point, dataset, job.job_id, job.seed))
    record = json.dumps({"metric": selection.select_metric, "axes": axes, "jobs": candidates}, indent=1)
    return Plan(list(planner.jobs.values()), {grid.name: grid_record(grid, members[grid.name]) for grid in grids},
                main_ids, record if axes else None)


def _candidates(axes: dict[str, list[str]], regime_name: str) -> list[dict[str, str]]:
    """The regime's --select candidates: every combination of the candidate values of its fields ([{}]: the
    regime has none of the selected fields and runs its one main job)."""
    own = {name: values for name, values in axes.items() if name in _recipe_fields(regime_name)}
    return [dict(zip(own, values)) for values in itertools.product(*own.values())]
