"""The derived jobs of a run (`--remedies`): planned from its main jobs, after them, and the parents told to save
what their children read."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.overrides import OverrideError, apply_overrides
from bench.registry import REMEDIES
from bench.training import Job

from .base import FEATURES, WEIGHTS, PlanContext


@dataclass(frozen=True)
class DerivedPlan:
    jobs: list[Job]  # the derived jobs, each after its parents in the run
    parents: list[Job]  # the main jobs, each with what it saves for its children (Runtime.save_weights/features)
    notes: tuple[str, ...]  # a line for each parent or form a remedy does not apply to, and why


def remedy_recipe(name: str, values: dict[str, str]):
    """The remedy's settings: its defaults with --set NAME.FIELD applied."""
    return apply_overrides(REMEDIES.get(name)().recipe, values, name)


def remedy_sources(name: str, recipe, given: dict[str, str], chosen_by: str) -> dict[str, str]:
    """Where each of the remedy's values came from, for its jobs' `hparam_sources` (not their ids): who asked for
    the remedy, and per setting --set or ltbench's default (None: the parent's value, e.g. posthoc.lr)."""
    sources = {name: chosen_by}
    for field in dataclasses.fields(recipe):
        default = "ltbench default" + (" (None: the parent's value)" if getattr(recipe, field.name) is None else "")
        sources[f"{name}.{field.name}"] = f"--set {name}.{field.name}" if field.name in given else default
    return sources


def _validation_fix(config, dataset: str) -> str:
    hint = getattr(config, "validation_hint", None)
    return f"ask for one with {hint(dataset)}" if hint else "it cannot have one"


def _saving(parent: Job, needs: set[str]) -> Job:
    runtime = parent.runtime
    if WEIGHTS in needs and not runtime.save_weights:
        runtime = dataclasses.replace(runtime, save_weights="trainable")
    if FEATURES in needs:
        runtime = dataclasses.replace(runtime, save_features=True)
    return dataclasses.replace(parent, runtime=runtime)


def plan_derived(remedies: tuple[str, ...], overrides: dict[str, dict[str, str]], main_jobs: list[Job],
                 candidates: list[dict], select_metric: str, chosen_by: str = "--remedies") -> DerivedPlan:
    """Each remedy's derived jobs on the main jobs it applies to. A remedy that applies to none of them is refused
    (naming why); one that skips some says which in `notes`."""
    children: dict[str, Job] = {}
    needs: dict[str, set[str]] = {}
    notes: list[str] = []
    for name in dict.fromkeys(remedies):
        remedy = REMEDIES.get(name)()
        recipe = remedy_recipe(name, overrides.get(name, {}))
        sources = remedy_sources(name, recipe, overrides.get(name, {}), chosen_by)
        applicable, reasons = [], {}
        for job in main_jobs:
            reason = remedy.applies(job)
            if reason:
                reasons.setdefault(job.regime, reason)
            else:
                applicable.append(job)
        own = [f"{name}: not run on {regime}: {reason}" for regime, reason in reasons.items()]
        planned = 0
        for group in remedy.groups(applicable, candidates):
            config = group[0].dataset_config
            context = PlanContext(bool(getattr(config, "has_validation", False)),
                                  _validation_fix(config, group[0].dataset), select_metric)
            derivations, skipped = remedy.children(group, recipe, context)
            own += skipped
            for derivation in derivations:
                child = dataclasses.replace(group[0], derived=derivation,
                                            hparam_sources={**group[0].hparam_sources, **sources})
                children.setdefault(child.job_id, child)
                planned += 1
            for parent in group if derivations else ():
                needs.setdefault(parent.job_id, set()).add(remedy.needs)
        if not planned:
            why = "; ".join(dict.fromkeys(own)) or "the run has no main job"
            raise OverrideError(f"--remedies {name}: no job of this run to apply it to ({why})")
        notes += own
    parents = [_saving(job, needs[job.job_id]) for job in main_jobs if job.job_id in needs]
    return DerivedPlan(list(children.values()), parents, tuple(notes))


def _features_saved(store, job_id: str) -> bool:
    record = getattr(store.load(job_id, full=False), "features", None) or {}
    try:
        return (store.run_dir / record["file"]).stat().st_size == record.get("bytes")
    except (KeyError, OSError, TypeError):
        return False


def check_parents_saved(jobs: list[Job], store) -> None:
    """Refuse (ValueError) a run whose derived jobs read what finished parents never saved (they ran before
    --remedies asked for it): they are not retrained behind the user's back."""
    from bench.weights import unsaved_jobs

    planned = {job.job_id: job for job in jobs}
    parents = [planned[p] for job in jobs if job.derived for p in job.derived.parents if p in planned]
    parents = list({job.job_id: job for job in parents}.values())
    missing = [(job, "weights") for job in unsaved_jobs([j for j in parents if j.runtime.save_weights], store,
                                                       "trainable")]
    missing += [(job, "cached features") for job in parents
                if job.runtime.save_features and store.is_finished(job.job_id) and not _features_saved(store, job.job_id)]
    if missing:
        names = ", ".join(f"{job.label} ({what})" for job, what in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ValueError(f"--remedies: {len(missing)} finished parent jobs of this run did not save what their "
                         f"derived jobs read ({names}); add --force to retrain every job of the command and save "
                         f"it, or use another --out")
