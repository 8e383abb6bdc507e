"""What a job leaves behind, in one schema: `JobResult` (it finished) or `JobFailure` (it did not).

The engine returns a JobResult, the scheduler records failures as JobFailure, the run store writes either as
`jobs/<id>.json` (`to_dict`) and reads it back (`outcome_from_dict`), and results.csv and the report take their
rows from `to_row`: a field of a result is named here and nowhere else.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional, Union

from bench.ppt import ppt

GROUPS = ("many", "medium", "few")
CLASS_BALANCED = ("worst_class_acc", "hmean_acc", "gmean_acc", "macro_f1", "error_rate")  # test split
CI_METRICS = ("top1", "few")  # their bootstrap intervals over test images, `ci95` of the test metrics
CI_COLUMNS = tuple(f"{metric}_ci_{end}" for metric in CI_METRICS for end in ("low", "high"))
ROW_COLUMNS = ("job_id", "status", "dataset", "regime", "seed", "recipe_id", "protocol", "model", "pretrained",
               "activation", "top1", *GROUPS, "train_top1", *(f"train_{g}" for g in GROUPS), "trainable_params",
               "trainable_pct", "epochs", "train_s", "total_s", "split_fingerprint", "data_fingerprint", "error",
               *CLASS_BALANCED, *CI_COLUMNS, "backbone_trainable_params", "backbone_trainable_pct",
               "classifier_params", "remedy", "remedy_value", "parent_ids", "ppt")
# the feature statistics' columns (bench.statistics), from the result's `statistics`: column -> (its "job" scalars
# or a group's, key); the job's CKA is over all rows of a split, the few-shot group's over the rows of its classes
STATISTIC_COLUMNS = {"frechet": ("job", "frechet"), "frechet_undefined": ("job", "frechet_undefined"),
                     "frechet_few": ("few", "frechet"), "nc1_train": ("job", "train_nc1"),
                     "nc1_test": ("job", "test_nc1"), "cka_train": ("job", "train_cka"),
                     "cka_test": ("job", "test_cka"), "cka_test_few": ("few", "test_cka")}
ROW_COLUMNS += tuple(STATISTIC_COLUMNS)


def recipe_id(config: dict) -> str:
    """A job's config without its seed, hashed: the seeds of one recipe share it, and only they may be averaged."""
    canonical = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _row(status: str, job_id: str, config: dict, **values) -> dict:
    """A results.csv row: ROW_COLUMNS in order, None where the outcome has no value."""
    values.update({
        "job_id": job_id,
        "status": status,
        "dataset": config.get("dataset"),
        "regime": config.get("regime"),
        "seed": config.get("seed"),
        "recipe_id": recipe_id(config) if config else None,  # rows that share it may be averaged over seeds
        "protocol": config.get("protocol"),
        "model": config.get("model"),
        "pretrained": config.get("pretrained"),
        "data_fingerprint": config.get("data_fingerprint"),
    })
    derived = config.get("derived")
    if derived:  # a derived job (bench.derived): which remedy, its α or τ, and the jobs it was made from
        values.update({"remedy": derived["variant"], "remedy_value": derived.get("value"),
                       "parent_ids": " ".join(derived["parents"])})
    return _columns(values)


def _columns(values: dict) -> dict:
    """ROW_COLUMNS in order, None where there is no value; `ppt` (bench.ppt) from the row's own top-1 and backbone
    parameters, so that a row file written before the column existed gets it too."""
    row = {column: values.get(column) for column in ROW_COLUMNS}
    row["ppt"] = ppt(row["top1"], row["backbone_trainable_params"])
    return row


def statistic_values(statistics: dict | None) -> dict:
    """The STATISTIC_COLUMNS of a result's `statistics` (None where it has none: no training-set evaluation, or a
    result written before they existed)."""
    parts = {"job": (statistics or {}).get("job") or {}, **((statistics or {}).get("groups") or {})}
    return {column: (parts.get(part) or {}).get(key) for column, (part, key) in STATISTIC_COLUMNS.items()}


@dataclass
class JobResult:
    """A finished job: its config (the id hashes it), what it ran on, its metrics and its feature statistics."""

    job_id: str
    label: str
    config: dict
    runtime: dict = field(default_factory=dict)  # Runtime as resolved: device, precision, loader workers
    dataset: dict = field(default_factory=dict)  # LongTailData.summary(): sizes, counts, groups, class names
    split_fingerprint: Optional[str] = None
    hparam_sources: dict = field(default_factory=dict)  # recipe field -> protocol rule, --set, --epochs or grid
    activation: Optional[str] = None  # the tower's activation, gelu or quick_gelu
    resolved: dict = field(default_factory=dict)  # automatic recipe sizes as the regime resolved them
    metrics: dict = field(default_factory=dict)  # split -> bench.evaluation.classification_metrics
    # {"groups": group summary, "job": job scalars, "seconds", "blocks": per-block CKA (a tower that trains),
    # "file": stats/<id>.npz} (bench.statistics, bench.block_similarity)
    statistics: Optional[dict] = None
    # trainable (all), backbone, trainable_pct, backbone_trainable (not the classifier), classifier (its class
    # weight and bias), backbone_trainable_pct, trainable_tensors
    params: dict = field(default_factory=dict)
    epochs: Optional[int] = None
    history: list = field(default_factory=list)  # one record per epoch
    timings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    # {"file": "weights/<id>.safetensors", "content", "bytes", "tensors", "initial_tensors", "sha256"} with
    # --save-weights (bench.weights), {"file": None, "reason"} for a regime that trains nothing; None without it
    weights: Optional[dict] = None
    predictions: Optional[dict] = None  # {"file": "predictions/<id>.npz", "keys", "bytes"}: per test image
    # {"file": "features/<id>.safetensors", "bytes", "sha256", "splits"}: what a posthoc child reads
    # (bench.remedies.cached); None unless a posthoc remedy was planned on this job
    features: Optional[dict] = None
    # a derived job's Derivation record (method, variant, value, settings, parents) and what it found (a greedy
    # soup's ingredients, ...); None for a job that trained
    derived: Optional[dict] = None
    log: Optional[str] = None
    oom_retry: Optional[dict] = None  # the halved batch sizes of an out-of-memory retry
    save_error: Optional[str] = None  # the driver could not save it (the worker may have)
    # where RunStore moved the per-class arrays ({"file": "arrays/<id>.npz", "keys": [...]}); None when they are
    # inline, as in a result in memory or a result read back in full (RunStore.load)
    arrays: Optional[dict] = None

    status = "ok"

    def to_dict(self) -> dict:
        """The result as its JSON object. Not a deep copy (dataclasses.asdict took seconds at 8,142 classes): the
        fields hold plain JSON values already, and the nested ones are the result's own."""
        return {"status": self.status, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def to_row(self) -> dict:
        """One flat row; an empty group stays empty (None), never 0 or NaN-as-a-number."""
        test = self.metrics.get("test") or {}
        accuracies = {prefix + key: (self.metrics.get(split) or {}).get(key)
                      for split, prefix in (("test", ""), ("train", "train_")) for key in ("top1", *GROUPS)}
        ci95 = test.get("ci95") or {}
        intervals = dict(zip(CI_COLUMNS, (b for m in CI_METRICS for b in ci95.get(m) or (None, None))))
        return _row(self.status, self.job_id, self.config, activation=self.activation, **accuracies,
                    **{key: test.get(key) for key in CLASS_BALANCED}, **intervals,
                    trainable_params=self.params.get("trainable"), trainable_pct=self.params.get("trainable_pct"),
                    backbone_trainable_params=self.params.get("backbone_trainable"),
                    backbone_trainable_pct=self.params.get("backbone_trainable_pct"),
                    classifier_params=self.params.get("classifier"),
                    epochs=self.epochs, train_s=self.timings.get("train_s"), total_s=self.timings.get("total_s"),
                    split_fingerprint=self.split_fingerprint, **statistic_values(self.statistics))


@dataclass
class JobFailure:
    """A job that did not finish: failed (its error and traceback) or interrupted (the rerun resumes it)."""

    job_id: str
    label: str
    config: dict
    error: str
    status: str = "failed"  # failed | interrupted
    traceback: Optional[str] = None
    log: Optional[str] = None
    save_error: Optional[str] = None

    @classmethod
    def of(cls, job, error: str, status: str = "failed", **details) -> "JobFailure":
        return cls(job.job_id, job.label, job.config(), error, status, **details)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        return {"status": data.pop("status"), **data}

    def to_row(self) -> dict:
        return _row(self.status, self.job_id, self.config, error=self.error)


JobOutcome = Union[JobResult, JobFailure]


@dataclass
class JobRow:
    """A job's outcome in brief, what the driver keeps of every job: its status, label and error, and its
    results.csv row (which the run summary prints). RunStore writes one beside each job's JSON."""

    job_id: str
    label: str
    status: str
    row: dict
    error: Optional[str] = None

    @classmethod
    def of(cls, outcome: "JobOutcome | JobRow") -> "JobRow":
        if isinstance(outcome, JobRow):
            return outcome
        return cls(outcome.job_id, outcome.label, outcome.status, outcome.to_row(), getattr(outcome, "error", None))

    def to_row(self) -> dict:
        return _columns(self.row)


def outcome_from_dict(data: dict, run_dir=None) -> JobOutcome:
    """A saved result or failure, from any version: fields this one does not know are dropped, missing ones
    take their defaults. With the `run_dir` it was read from, the per-class arrays and the data-set summary that
    RunStore keeps in files of their own are put back (`bench.results.restore`); without it they stay there
    (`arrays` and `dataset["file"]` say where)."""
    if run_dir is not None:
        from bench.results import restore  # bench.results imports this module

        data = restore(data, run_dir)
    kind = JobResult if data.get("status") == "ok" else JobFailure
    known = {f.name for f in dataclasses.fields(kind)}
    values = {k: v for k, v in data.items() if k in known}
    values.setdefault("label", data.get("job_id", ""))
    values.setdefault("config", {})
    if kind is JobFailure:
        values.setdefault("error", "unknown error")
        values.setdefault("status", data.get("status") or "failed")
    return kind(**values)
