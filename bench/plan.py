"""Planning: what a run asks for (`Selection`) expanded into the jobs it runs (`Plan`), every recipe resolved.

Where two sources give one field, the more specific wins, by one precedence (highest first):

    grid point / --select candidate      the fields the grid varies (a data-set axis's values too: above
                                          --set DATASET.FIELD), the candidate's values
    --set REGIME.FIELD                   (and --set DATASET.FIELD: a data set's options; DATASET.epochs is the
                                          epochs of every regime that trains on it, below REGIME.epochs)
    --set all.FIELD                      every selected regime that has FIELD
    --epochs, --imbalance-ratio
    --protocol                           bench.protocols
    defaults                             the regime's recipe, the data set's config

(`--select FIELD=v1,v2`: each regime's main job becomes one job per candidate, picked later on the validation
split, see reports.selection). Every value that lost to another is listed in `Plan.overridden`, which the CLI
prints before training; each job records where every value that is not LIFT-plus's config default came from
(`hparam_sources`: ltbench's own defaults too, and under a paper protocol the script line, bench.protocols), for
the report. A `--set` for a data set or regime that is not in the run is refused, and so is a paper protocol
whose scripts ran none of the run's jobs.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from bench.data import DATASETS, LongTailData, dataset_config
from bench.data.registry import registered_name
from bench.derived.planning import DerivedPlan, plan_derived
from bench.data.groups import GROUP_NAMES, GROUP_RULES
from bench.grids import METRICS, Grid, data_axis, data_values, grid_record, load_grids, recipe_values, value_text
from bench.job_result import recipe_id
from bench.manifest import ManifestJob, dataset_key
from bench.models.backbone import BUNDLED, DEMO_MODEL, uses_quick_gelu
from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.protocols import PROTOCOLS, REFERENCE, Protocol, own_default_sources
from bench.plugins import plugin_identities
from bench.registry import REGIMES, REMEDIES
from bench.training import Job, Runtime
from bench.training.recipe import Recipe

ALL_REGIMES = "all"  # --regimes all; --set all.FIELD=VALUE: every selected regime that has FIELD
DEMO_DATASET = "demo_lt"
# the first command's regimes (README): the papers' comparison (zero-shot, classifier only, full and partial
# fine-tuning, LoRA, AdaptFormer, LIFT+) and two text-side regimes, every one at its reference recipe, in about a
# minute on 2 cores; `--regimes all` adds the rest (CoOp's 50 reference epochs alone take ~4.5 minutes there)
DEMO_REGIMES = ("zero_shot", "linear_probe", "full", "partial", "lora", "adaptformer", "lift_plus", "clip_adapter",
                "proj_tuning")
# and, unless it names --regimes or --remedies, one derived result: WiSE-FT on full fine-tuning, the remedy the
# papers' finding invites (bench.derived)
DEMO_REMEDIES, DEMO_REMEDY_REGIMES = ("wise",), ("full",)
SELECTION_FILE = "selection.json"  # in the run folder: the --select candidates and the metric that picks
DEFAULT_MODEL, DEFAULT_PRETRAINED = "ViT-B-16", "openai"

Overrides = dict[str, dict[str, str]]  # scope -> field -> value as written, from parse_assignments


class Measured(NamedTuple):
    """A metric the run picks on or plots, and the jobs whose data must have a value of it on `splits`. `group`
    names a grid with data-set axes, whose points may lack it (CIFAR-100-LT at imbalance ratio 10 has no few-shot
    class) as long as one of them has it; None: every job's data must."""

    where: str  # what an error names: --select-metric M, grid NAME [at AXIS=VALUE]: metric M
    metric: str
    splits: tuple[str, ...]
    job_ids: tuple[str, ...]
    group: str | None = None


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
    remedies: tuple[str, ...] = ()  # --remedies: derived jobs on the main jobs (bench.derived)
    remedy_regimes: tuple[str, ...] = ()  # --remedy-regimes: the main jobs' regimes they apply to (none: all)

    def __post_init__(self):
        if self.model is None:
            object.__setattr__(self, "model", DEMO_MODEL if self.demo_only else DEFAULT_MODEL)
        if self.pretrained is None:
            object.__setattr__(self, "pretrained", BUNDLED if self.model == DEMO_MODEL else DEFAULT_PRETRAINED)

    @property
    def demo_only(self) -> bool:
        return set(self.datasets) == {DEMO_DATASET}

    def remedy_plan(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(remedies, the regimes they apply to): --remedies and --remedy-regimes, or the demo's WiSE-FT on full
        fine-tuning for a demo_lt-only run that names neither regimes nor remedies nor grids."""
        if not self.remedies and self.demo_only and not self.regimes and not self.grids:
            return DEMO_REMEDIES, DEMO_REMEDY_REGIMES
        return self.remedies, self.remedy_regimes

    def regime_names(self) -> list[str]:
        """The regimes of the main jobs: `all` expanded, duplicates dropped, unknown names rejected. Without
        --regimes: all of them, or the demo's DEMO_REGIMES for a demo_lt-only run."""
        default = () if self.grids else DEMO_REGIMES if self.demo_only else (ALL_REGIMES,)
        requested = self.regimes or default
        names = REGIMES.names() if ALL_REGIMES in requested else list(dict.fromkeys(requested))
        for name in names:
            REGIMES.get(name)  # unknown name -> UnknownNameError
        return names


@dataclass(frozen=True)
class Plan:
    """The jobs of a run (equal jobs once), its grids (name -> the JSON record for the run folder) and the ids
    of its main jobs (a regime's own recipe from --regimes, not only a grid variant; every --select candidate
    is one), the JSON record of its --select candidates for the run folder (None without --select), and one
    line per value given that another source overrode (module docstring), for the plan summary."""

    jobs: list[Job]
    grids: dict[str, str]
    main_ids: set[str]
    selection: str | None = None
    overridden: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the remedies' parents and forms not run, and why (bench.derived.planning)

    @property
    def measured(self) -> list[Measured]:
        """Every metric the run picks on (--select-metric, on the validation and the test split of the main jobs'
        data) or plots (each grid's, on the test split of its jobs' data; one entry per data-set point of a grid
        with data-set axes), for bench.cli to check against the data."""
        measured = []
        if self.selection:
            metric = json.loads(self.selection)["metric"]
            main = tuple(job.job_id for job in self.jobs if job.job_id in self.main_ids)
            measured.append(Measured(f"--select-metric {metric}", metric, ("validation", "test"), main))
        for name, record in self.grids.items():
            record = json.loads(record)
            metric, data_axes = record["metric"], [axis for axis in record["axes"] if data_axis(axis)]
            points: dict[str, list[str]] = {}
            for member in record["jobs"]:
                at = ", ".join(f"{a}={member['point'][a]}" for a in data_axes if a in member["point"])
                points.setdefault(at, []).append(member["job_id"])
            measured += [Measured(f"grid {name}{' at ' + at if at else ''}: metric {metric}", metric, ("test",),
                                  tuple(ids), name if data_axes else None) for at, ids in points.items()]
        return measured

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
    """--set parsed, each scope a data set or a regime of the run, or `all`, and each `all.FIELD` a field of
    some regime in `regimes` (those of the main jobs and the grids): a typo fails before anything runs."""
    overrides = parse_assignments(list(selection.overrides))
    unknown = set(overrides) - set(DATASETS.names()) - set(REGIMES.names()) - set(REMEDIES.names()) - {ALL_REGIMES}
    if unknown:
        raise OverrideError(f"--set scope {sorted(unknown)[0]!r} is neither a data set nor a regime nor a remedy nor "
                            f"{ALL_REGIMES!r}; valid: {', '.join(DATASETS.names() + REGIMES.names() + REMEDIES.names())}")
    remedies = selection.remedy_plan()[0]
    stray = sorted(set(overrides) & set(REMEDIES.names()) - set(remedies))
    if stray:
        raise OverrideError(f"--set {stray[0]}.{next(iter(overrides[stray[0]]))}: {stray[0]} is not in --remedies "
                            f"({', '.join(remedies) or 'none'}); add --remedies {stray[0]}")
    for scope, values in overrides.items():
        _check_in_run(f"{scope}.{next(iter(values))}", scope, list(dict.fromkeys(selection.datasets)),
                      list(dict.fromkeys(regimes)))
    for name in overrides.get(ALL_REGIMES, {}):
        if not any(name in _recipe_fields(regime) for regime in regimes):
            raise OverrideError(f"--set {ALL_REGIMES}.{name}: no selected regime has a setting {name!r}")
    return overrides


def _check_in_run(key: str, scope: str, datasets: list[str], regimes: list[str]) -> None:
    """A --set for a data set or regime that does not run would change nothing: refuse it, naming what runs."""
    if scope in DATASETS.names() and scope not in datasets:
        raise OverrideError(f"--set {key}: {scope} is not one of this run's data sets ({', '.join(datasets)}); "
                            f"add it to --datasets or set the option of one of those")
    if scope in REGIMES.names() and scope not in regimes:
        raise OverrideError(f"--set {key}: {scope} is neither in --regimes nor in a grid (this run's regimes: "
                            f"{', '.join(regimes) or 'none'}); add it to --regimes or set one of those")


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


def _measurable(labels: np.ndarray, data: LongTailData) -> list[str]:
    """The metrics a split with these labels has a value of: none when empty; a group's when it has a class of it."""
    if not len(labels):
        return []
    groups = data.groups.as_dict()
    return ["top1", "mean_class_acc"] + [name for name in GROUP_NAMES if np.isin(labels, groups[name]).any()]


def check_measurable(data: LongTailData, dataset: str, metric: str, where: str,
                     splits: tuple[str, ...] = ("validation", "test")) -> None:
    """`metric` must have a value on each of the data set's `splits`: a shot group without a class there gives
    none, so --select would train every candidate and pick none, and a grid's heatmap would stay empty."""
    for split in splits:
        measurable = _measurable((data.val if split == "validation" else data.test).labels, data)
        if metric in measurable:
            continue
        if not measurable:
            raise OverrideError(f"{where}: the {split} split of {dataset} has no image; give it images")
        raise OverrideError(f"{where}: the {split} split of {dataset} has no {metric}-shot class "
                            f"({GROUP_RULES[metric]} training images), so it gives no {metric} accuracy; use a "
                            f"metric it has: {', '.join(measurable)}")


def _check_named(dataset: str, default: Any, config: Any) -> Any:
    """A variant whose name states a setting (cifar100_lt_ir50, inat2018_genus) keeps it: changed, its jobs and
    report rows would carry a name that says another data set."""
    for name in getattr(default, "named_by", ()):
        if getattr(config, name) != getattr(default, name):
            base = registered_name(type(default).__mro__[1])
            named, asked = (f"{v:g}" if isinstance(v, float) else v
                            for v in (getattr(default, name), getattr(config, name)))
            raise OverrideError(f"{dataset} is {name}={named} by its name, so it cannot take {name}={asked}; use "
                                f"{base} with that {name} (--set {base}.{name}={asked})")
    return config


def _check_imbalance_ratio(selection: Selection) -> None:
    """--imbalance-ratio that no selected data set can take is a mistake, not a no-op."""
    if selection.imbalance_ratio is not None and not any(
            hasattr(dataset_config(name), "imbalance_ratio") for name in selection.datasets):
        raise OverrideError(f"--imbalance-ratio: none of the data sets {', '.join(selection.datasets)} has an "
                            f"imbalance ratio (CIFAR-100-LT and the generated sets do)")


def _check_grid_datasets(grids: list[Grid], datasets: tuple[str, ...]) -> None:
    """A grid with data-set axes runs on the data sets they name: each must be in the run, or its points would
    be dropped without a word."""
    for grid in grids:
        missing = [name for name in grid.datasets if name not in datasets]
        if missing:
            raise OverrideError(f"grid {grid.name} varies options of {', '.join(missing)}, which is not one of this "
                                f"run's data sets ({', '.join(dict.fromkeys(datasets))}); add it to --datasets (a "
                                f"grid with data-set axes runs only on the data sets it names)")


def _check_every_dataset_runs(selection: Selection, grids: list[Grid], jobs) -> None:
    """A data set of --datasets that no job runs on (a grid-only run whose grids name other data sets) would be
    dropped without a word."""
    ran = {job.dataset for job in jobs}
    for dataset in dict.fromkeys(selection.datasets):
        if dataset not in ran:
            named = ", ".join(f"{grid.name} on {' and '.join(grid.datasets)}" for grid in grids if grid.datasets)
            raise OverrideError(f"--datasets {dataset}: no job runs on it (no --regimes, and the grids with data-set "
                                f"axes run only on the data sets they name: {named}); drop it from --datasets or "
                                f"add --regimes")


def _check_protocol_covers(protocol: Protocol, selection: Selection, jobs) -> None:
    """A paper protocol whose scripts ran none of the planned jobs would change nothing: a mistake, not a no-op."""
    if protocol.lines and not any(protocol.line(job.dataset, job.regime, job.model, job.pretrained) for job in jobs):
        raise OverrideError(protocol.uncovered(selection.model, selection.pretrained))


def _check_epochs(selection: Selection, regimes: list[str]) -> None:
    """--epochs in a run where nothing trains (zero_shot alone) would change nothing: a mistake, not a no-op."""
    if selection.epochs is not None and not any(REGIMES.get(name).trains for name in regimes):
        raise OverrideError(f"--epochs {selection.epochs}: none of the regimes {', '.join(dict.fromkeys(regimes))} "
                            f"trains; drop --epochs or add a regime that trains")


def _with_epochs(recipe: Recipe, regime: type, data_config: Any) -> Recipe:
    """Epochs left open take the data set's default; a regime that trains needs at least one."""
    if recipe.epochs is None:
        recipe = dataclasses.replace(recipe, epochs=data_config.epochs)
    if regime.trains and recipe.epochs < 1:
        raise OverrideError(f"{regime.name}.epochs={recipe.epochs}: a regime that trains needs at least 1 epoch")
    return recipe


@dataclass(frozen=True)
class _Layer:
    """The values one source gives one config; layers apply in precedence order, a later one winning."""

    source: str  # as a job's hparam_sources records it: --epochs, --set, grid NAME, --select
    scope: str  # what an error in a value names: the --set scope, or "grid NAME (REGIME)"
    values: dict[str, str]  # field -> value as written
    written: dict[str, str]  # field -> how the user wrote it, for the lines of overridden values
    option: str = "--set"  # what an error names before the scope; none for a grid point or --select candidate

    @classmethod
    def of_set(cls, scope: str, values: dict[str, str]) -> "_Layer":
        return cls("--set", scope, values, {k: f"--set {scope}.{k}={v}" for k, v in values.items()})

    def named(self, scope: str, name: str) -> str:
        """The source as a line about `scope`.`name` names it: the --set scope where it is another one."""
        return f"--set {self.scope}.{name}" if self.source == "--set" and self.scope != scope else self.source


Given = dict[str, list[tuple[str, Any]]]  # field -> (how it was written, its value) per source, lowest first


def _given_by_protocol(protocol: Protocol, recipe: Recipe, sources: dict[str, str]) -> Given:
    """The protocol's values, the lowest source a user chose, for the lines of overridden values."""
    return {name: [(f"--protocol {protocol.name} ({name}={value_text(getattr(recipe, name))})",
                    getattr(recipe, name))] for name in sources}


@dataclass
class _Planner:
    """What one `plan` call shares: the parsed options, the jobs found so far, each kept once by id, and the
    values given that another source overrode: (scope, field, winning source, losers) -> the winning values."""

    selection: Selection
    runtime: Runtime
    protocol: Protocol
    overrides: Overrides
    fingerprints: dict
    quick_gelu: bool
    jobs: dict[str, Job] = field(default_factory=dict)
    overridden: dict[tuple, dict[str, None]] = field(default_factory=dict)

    def resolve(self, scope: str, config: Any, layers: list[_Layer], given: Given) -> tuple[Any, dict[str, str]]:
        """`config` with the layers applied in turn, and {field: source} of the values they set; notes every
        value given (in `given` or a layer) that a later layer overrode with another."""
        given = {name: list(entries) for name, entries in given.items()}
        winners: dict[str, _Layer] = {}
        for layer in layers:
            config = apply_overrides(config, layer.values, layer.scope, layer.option)
            winners.update(dict.fromkeys(layer.values, layer))
            for name in layer.values:
                given.setdefault(name, []).append((layer.written[name], getattr(config, name)))
        for name, entries in given.items():
            final = getattr(config, name)
            lost = tuple(written for written, value in entries[:-1] if value != final)
            if lost:
                key = (scope, name, winners[name].named(scope, name), lost)
                self.overridden.setdefault(key, {})[value_text(final)] = None
        return config, {name: layer.source for name, layer in winners.items()}

    def data_config(self, dataset: str, grid: Grid | None = None, point: dict | None = None) -> Any:
        """The data set's config: its defaults, then --imbalance-ratio where it has one, then its --set options,
        then a grid point's values of its options (bench.grids, data-set axes)."""
        config = dataset_config(dataset)
        layers = []
        ratio = self.selection.imbalance_ratio
        if ratio is not None and hasattr(config, "imbalance_ratio"):
            layers.append(_Layer("--imbalance-ratio", dataset, {"imbalance_ratio": repr(ratio)},
                                 {"imbalance_ratio": f"--imbalance-ratio {ratio:g}"}))
        if self.overrides.get(dataset):
            layers.append(_Layer.of_set(dataset, self.overrides[dataset]))
        values = data_values(point, dataset) if grid is not None else {}
        if values:
            source = f"grid {grid.name}"
            layers.append(_Layer(source, f"{source} ({dataset})", values,
                                 {k: f"{source} {dataset}.{k}={v}" for k, v in values.items()}, option=""))
        return _check_named(dataset, config, self.resolve(dataset, config, layers, {})[0])

    def layers(self, dataset: str, regime: type, point: dict, source: str) -> list[_Layer]:
        """The sources of a recipe's values above the protocol, lowest first (the module docstring's order)."""
        layers = []
        if self.selection.epochs is not None and regime.trains:
            epochs = self.selection.epochs
            layers.append(_Layer("--epochs", regime.name, {"epochs": str(epochs)}, {"epochs": f"--epochs {epochs}"}))
        fields = _recipe_fields(regime.name)
        shared = {k: v for k, v in self.overrides.get(ALL_REGIMES, {}).items() if k in fields}
        data_epochs = {k: v for k, v in self.overrides.get(dataset, {}).items() if k == "epochs" and regime.trains}
        for scope, values in ((ALL_REGIMES, shared), (dataset, data_epochs),
                              (regime.name, self.overrides.get(regime.name, {}))):
            if values:
                layers.append(_Layer.of_set(scope, values))
        if point:
            values = {k: value_text(v) for k, v in point.items()}
            layers.append(_Layer(source, f"{source} ({regime.name})", values,
                                 {k: f"{source} {k}={v}" for k, v in values.items()}, option=""))
        return layers

    def recipe(self, dataset: str, data_config: Any, regime_name: str, point: dict | None = None,
               source: str = "") -> tuple[Recipe, dict[str, str]]:
        """The resolved recipe of a main job, or of a grid point or --select candidate (`point`: field -> value,
        whose own values win, recorded as coming from `source`), and its sources."""
        regime = REGIMES.get(regime_name)
        model, pretrained = self.selection.model, self.selection.pretrained
        recipe, sources = self.protocol.apply(dataset, regime_name, regime.recipe, regime.trains, model, pretrained)
        recipe, set_by = self.resolve(regime_name, recipe, self.layers(dataset, regime, point or {}, source),
                                      _given_by_protocol(self.protocol, recipe, sources))
        recipe, sources = _with_epochs(recipe, regime, data_config), {**sources, **set_by}
        return recipe, {**sources, **own_default_sources(dataset, regime_name, regime.recipe, recipe, sources),
                        **self.protocol.provenance(dataset, regime_name, model, pretrained)}

    def overridden_lines(self) -> tuple[str, ...]:
        """One line per overridden value: 'linear_probe.epochs = 2 from --set (overrides --epochs 1)'."""
        return tuple(f"{scope}.{name} = {', '.join(values)} from {winner} (overrides {', '.join(lost)})"
                     for (scope, name, winner, lost), values in self.overridden.items())

    def add(self, dataset: str, data_config: Any, regime_name: str, recipe: Recipe,
            sources: dict[str, str]) -> list[Job]:
        """One job per seed; a job equal to one already planned is that one."""
        added = []
        for seed in self.selection.seeds:
            job = Job(dataset, data_config, regime_name, recipe, self.selection.model, self.selection.pretrained,
                      seed, quick_gelu=self.quick_gelu, data_fingerprint=self.fingerprints.get(data_config, ""),
                      protocol=self.protocol.name, runtime=self.runtime, hparam_sources=sources,
                      plugins=plugin_identities(regime_name, dataset, recipe.loss))
            added.append(self.jobs.setdefault(job.job_id, job))
        return added


def plan(selection: Selection, runtime: Runtime, fingerprints: dict | None = None) -> Plan:
    """Data sets × regimes × seeds, plus every grid's points, with recipes and data options resolved.
    `fingerprints` maps each data set config to its data fingerprint (bench.data.check_images); without it
    the plan only checks names, options and grids, before any data is read."""
    regimes = selection.regime_names()
    grids = load_grids(selection.grids)
    _check_grid_datasets(grids, selection.datasets)
    run_regimes = regimes + [name for grid in grids for name in grid.axes["regime"]]
    overrides = _checked_overrides(selection, run_regimes)
    _check_imbalance_ratio(selection)
    _check_epochs(selection, run_regimes)
    planner = _Planner(selection, runtime, PROTOCOLS.get(selection.protocol), overrides, fingerprints or {},
                       uses_quick_gelu(selection.model, selection.pretrained, selection.quick_gelu))
    axes = _selection_axes(selection, regimes)
    main_ids: set[str] = set()
    members: dict[str, list] = {grid.name: [] for grid in grids}
    candidates: list[dict] = []
    for dataset in dict.fromkeys(selection.datasets):
        data_config = planner.data_config(dataset)
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
        for grid in (grid for grid in grids if grid.runs_on(dataset)):
            for point in grid.points(dataset):
                point_data = planner.data_config(dataset, grid, point) if grid.datasets else data_config
                recipe, sources = planner.recipe(dataset, point_data, point["regime"], recipe_values(point),
                                                 f"grid {grid.name}")
                for job in planner.add(dataset, point_data, point["regime"], recipe, sources):
                    members[grid.name].append((point, dataset, job.job_id, job.seed))
    _check_every_dataset_runs(selection, grids, planner.jobs.values())
    _check_protocol_covers(planner.protocol, selection, planner.jobs.values())
    derived = _derived(selection, overrides, planner, main_ids, candidates)
    record = json.dumps({"metric": selection.select_metric, "axes": axes, "jobs": candidates}, indent=1)
    return Plan(list(planner.jobs.values()) + derived.jobs,
                {grid.name: grid_record(grid, members[grid.name]) for grid in grids},
                main_ids, record if axes else None, planner.overridden_lines(), derived.notes)


def _derived(selection: Selection, overrides: Overrides, planner: _Planner, main_ids: set[str],
             candidates: list[dict]) -> DerivedPlan:
    """The --remedies' derived jobs; their parents, told what to save for them, replace the planned ones."""
    remedies, regimes = selection.remedy_plan()
    if not remedies:
        if regimes:
            raise OverrideError("--remedy-regimes chooses the regimes of --remedies, and there are none: add "
                                "--remedies NAME or drop --remedy-regimes")
        return DerivedPlan([], [], ())
    main_jobs = [job for job in planner.jobs.values() if job.job_id in main_ids]
    outside = [name for name in regimes if name not in {job.regime for job in main_jobs}]
    if outside:
        raise OverrideError(f"--remedy-regimes {outside[0]}: not a regime of this run's main jobs "
                            f"({', '.join(dict.fromkeys(job.regime for job in main_jobs)) or 'none'})")
    main_jobs = [job for job in main_jobs if not regimes or job.regime in regimes]
    chosen_by = "--remedies" if selection.remedies else "the demo's default (bench.plan.DEMO_REMEDIES)"
    derived = plan_derived(remedies, overrides, main_jobs, candidates, selection.select_metric, chosen_by)
    for parent in derived.parents:
        planner.jobs[parent.job_id] = parent
    return derived


def _candidates(axes: dict[str, list[str]], regime_name: str) -> list[dict[str, str]]:
    """The regime's --select candidates: every combination of the candidate values of its fields ([{}]: the
    regime has none of the selected fields and runs its one main job)."""
    own = {name: values for name, values in axes.items() if name in _recipe_fields(regime_name)}
    return [dict(zip(own, values)) for values in itertools.product(*own.values())]
