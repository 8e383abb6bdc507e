"""`train(job) -> JobResult`: build the job's data, backbone and regime, then fit, evaluate and measure."""
from __future__ import annotations

import dataclasses
import logging
import time

import open_clip
import torch

import bench
from bench.block_similarity import block_cka
from bench.data import DataError, build_dataset, check_images
from bench.evaluation import classification_metrics, top_predictions
from bench.features import PretrainedTower, features, frozen_tower
from bench.job_result import JobResult
from bench.models.backbone import activation_of, input_size, load_backbone
from bench.models.head_init import initialise_head
from bench.models.heads import TextClassifier
from bench.registry import get_regime
from bench.statistics import summarised_statistics
from bench.weights import initial_tensors, nothing_to_save, save_weights
from bench.tracking import JobTrackers, open_trackers

from .checkpoint import EpochCheckpoint
from .context import JobContext
from .job import Job
from .loop import fit
from .precision import peak_memory_mb, seed_everything

log = logging.getLogger(__name__)


def job_data(job: Job):
    """The job's data set, refused when its files changed since the job was planned."""
    data = build_dataset(job.dataset_config, job.runtime.data_root, job.runtime.download)
    if job.data_fingerprint and check_images(data) != job.data_fingerprint:
        raise DataError(f"{job.label}: the split files or images of {job.dataset} changed after this run was "
                        f"planned; rerun the command, which plans new jobs for the new data")
    return data


def evaluate(model, data, split: str, view: str, ctx: JobContext) -> tuple[dict, dict]:
    """Metrics of one split (crops' logits averaged under the "tte" view), and its features, labels, predicted
    classes (`predictions`) and their logits (`top_logits`)."""
    start = time.perf_counter()
    extracted = features(model, data, split, view, ctx)
    preds, top_logits = top_predictions(model.head, extracted["features"], ctx.device)
    metrics = classification_metrics(preds, extracted["labels"].numpy(), data.train_class_counts)
    return ({**metrics, "seconds": time.perf_counter() - start, "tte": view == "tte"},
            {**extracted, "predictions": preds, "top_logits": top_logits})


def evaluate_splits(model, data, view: str, ctx: JobContext) -> tuple[dict, dict]:
    """Metrics of the test split and, where the data set has one, of the validation split (the split that picks
    among candidates, seen as the test split is); and each split's features and predictions."""
    metrics, extracted = {}, {}
    for split in ("test", "val") if data.val is not None else ("test",):
        metrics[split], extracted[split] = evaluate(model, data, split, view, ctx)
    return metrics, extracted


def feature_statistics(model, data, test: dict, train: dict, ctx: JobContext) -> dict:
    """Class-conditional statistics of single-crop features, train against test, with the pretrained tower's
    as the reference (the tower itself when it is frozen); the per-class arrays go to the run store. A tower that
    trains is also compared with the pretrained one block by block on the test split (`blocks`)."""
    start = time.perf_counter()
    tuned = {"train": train["features"][:, 0], "test": test["features"][:, 0]}
    labels = {"train": train["labels"], "test": test["labels"]}
    reference, tower = tuned, None
    if not frozen_tower(model):
        tower = PretrainedTower(ctx, input_size(model.visual))
        reference = {split: features(tower, data, split, "test", ctx)["features"][:, 0] for split in ("train", "test")}
    stats, summary = summarised_statistics(tuned, labels, data.num_classes, reference, data.groups.as_dict())
    summary["seconds"] = time.perf_counter() - start
    if tower is not None:
        summary["blocks"] = block_cka(model, tower, data, "test", ctx)
    if ctx.store:
        summary["file"] = ctx.store.save_statistics(ctx.job.job_id, stats)
    return summary


def cache_features(model, data, evaluated: dict, trained: dict | None, ctx: JobContext) -> dict:
    """Write what a posthoc child job reads (bench.derived.posthoc): the tuned tower's features of the training
    images (one centre crop, no augmentation) and of the test and validation images (as evaluated: every TTE
    crop), with the trained head; the result's `features` record."""
    from bench.remedies.cached import save_cached_features

    train = trained if trained is not None else features(model, data, "train", "test", ctx)
    splits = {"train": (train["features"][:, 0], train["labels"]),
              **{split: (extracted["features"], extracted["labels"]) for split, extracted in evaluated.items()}}
    path = ctx.store.features_path(ctx.job.job_id)
    record = save_cached_features(path, ctx.job.job_id, splits, model.head)
    return {"file": path.relative_to(ctx.store.run_dir).as_posix(), **record}


def classifier_tensors(model) -> list[str]:
    """The names of the classifier's trainable tensors: the class weight and bias of a head on the image
    features (`model.head`, however it is wrapped). A text-encoder classifier (TextClassifier) has none: what
    trains in it (CoOp's context, CLIP-Adapter's branches, the projections, text blocks) is backbone-side."""
    names = []

    def visit(module, prefix: str) -> None:
        if isinstance(module, TextClassifier):
            return
        names.extend(prefix + name for name, p in module.named_parameters(recurse=False) if p.requires_grad)
        for child_name, child in module.named_children():
            visit(child, f"{prefix}{child_name}.")

    visit(model.head, "head.")
    return names


def parameter_share(model) -> dict:
    """What trains, counted honestly: `trainable` (all, for compatibility), `classifier` (the class weight and
    bias), `backbone_trainable` (the rest: adapters, prompts, tuned backbone tensors, context vectors), the
    backbone's size, and both as a percentage of it (`trainable_pct` counts the classifier, as before)."""
    trainable = model.trainable_parameters()
    classifier = set(classifier_tensors(model))
    n_trainable = sum(p.numel() for _, p in trainable)
    n_classifier = sum(p.numel() for name, p in trainable if name in classifier)
    n_backbone = model.backbone_parameter_count()
    return {"trainable": n_trainable, "backbone": n_backbone, "trainable_pct": 100.0 * n_trainable / n_backbone,
            "backbone_trainable": n_trainable - n_classifier, "classifier": n_classifier,
            "backbone_trainable_pct": 100.0 * (n_trainable - n_classifier) / n_backbone,
            "trainable_tensors": [name for name, _ in trainable]}


def data_wait_share(history: list[dict]) -> float | None:
    """Total time the training steps waited for data over total step time, from the epochs' `data_wait_s` (and
    `step_s` where recorded, else the epoch's `seconds`); None when the records do not have them."""
    if not history or not all(h.get("data_wait_s") is not None for h in history):
        return None
    total = sum(h["step_s"] if h.get("step_s") is not None else h.get("seconds") or 0.0 for h in history)
    return sum(h["data_wait_s"] for h in history) / total if total > 0 else None


def train(job: Job) -> JobResult:
    """Build, train (resuming from a checkpoint), evaluate and measure one job; its trackers (--log), when it
    has any, get its curves and end its run with its status, final metrics and resolved sizes. A derived job
    (bench.derived) runs its remedy on its parents' results instead."""
    if job.derived is not None:
        from bench.derived import run_derived

        return run_derived(job)
    trackers = open_trackers(job)
    if trackers is None:
        return _train(job, None)
    try:
        result = _train(job, trackers)
    except BaseException as exc:
        try:
            trackers.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        except Exception as tracker_exc:  # the job's own error is the one to report
            log.error("%s: cannot end its tracker runs: %s", job.label, tracker_exc)
        raise
    trackers.finish("ok", result.metrics, result.resolved)
    return result


def _train(job: Job, trackers: JobTrackers | None) -> JobResult:
    start = time.perf_counter()
    ctx = JobContext.create(job)
    data = job_data(job)
    regime = get_regime(job.regime)
    seed_everything(job.seed)
    backbone = load_backbone(job.model, job.pretrained, data.classnames, ctx.device, cache=ctx.cache, seed=job.seed,
                             quick_gelu=job.quick_gelu, text_tower=regime.uses_text_tower(job.recipe),
                             text_embeddings=regime.needs_text_embeddings(job.recipe))
    recipe = regime.resolve(job.recipe, data.num_classes, backbone)
    model = regime.build(backbone, data, recipe).to(ctx.device)
    initialise_head(model, data, recipe, ctx)  # class_mean / linear_probing: from features through the tuned tower
    params = parameter_share(model)
    saving = bool(ctx.store and job.runtime.save_weights and regime.trains)
    initial = initial_tensors(model, classifier_tensors(model)) if saving else {}
    setup_s = time.perf_counter() - start
    log.info("%s: %d trainable parameters: %d of the backbone (%.3f%%) and %d of the classifier; %d epochs on %s/%s",
             job.label, params["trainable"], params["backbone_trainable"], params["backbone_trainable_pct"],
             params["classifier"], recipe.epochs, ctx.device, ctx.precision)

    train_start = time.perf_counter()
    checkpoint = EpochCheckpoint(ctx.store.checkpoint_path(job.job_id), job.job_id) if ctx.store else None
    history = fit(model, data, recipe, ctx, checkpoint, trackers) if regime.trains else []
    train_s = time.perf_counter() - train_start
    weights = None
    if saving:
        weights = save_weights(model, job, recipe, data.classnames, initial, ctx.store)
    elif ctx.store and job.runtime.save_weights:
        weights = nothing_to_save(job.regime)

    view = "tte" if recipe.tte else "test"
    statistics = None
    metrics, evaluated = evaluate_splits(model, data, view, ctx)
    tested = evaluated["test"]
    trained = None
    if job.runtime.train_eval:
        metrics["train"], trained = evaluate(model, data, "train", "test", ctx)
        single_crop = tested if view == "test" else features(model, data, "test", "test", ctx)  # as the papers'
        statistics = feature_statistics(model, data, single_crop, trained, ctx)
    cached = cache_features(model, data, evaluated, trained, ctx) if ctx.store and job.runtime.save_features else None
    per_image = {"test": tested["predictions"], "test_logit": tested["top_logits"],
                 "test_label": tested["labels"].numpy()}  # the labels: paired image bootstraps (reports.sweeps)
    predictions = ctx.store.save_predictions(job.job_id, per_image) if ctx.store else None
    return JobResult(
        job_id=job.job_id, label=job.label, config=job.config(),
        runtime={**dataclasses.asdict(job.runtime), "device": str(ctx.device), "precision": ctx.precision,
                 "loader_workers": ctx.workers},
        dataset=data.summary(), split_fingerprint=data.fingerprint, hparam_sources=job.hparam_sources,
        activation=activation_of(backbone.visual), resolved=_resolved(job.recipe, recipe),
        metrics=metrics, statistics=statistics,
        params=params, weights=weights, predictions=predictions, features=cached,
        epochs=recipe.epochs, history=history,
        timings={"setup_s": setup_s, "train_s": train_s,
                 "train_images_per_s": (sum(h["images_per_s"] for h in history) / len(history) if history else None),
                 "eval_s": sum(m["seconds"] for m in metrics.values()), "peak_memory_mb": peak_memory_mb(ctx.device),
                 "data_wait_share": data_wait_share(history),
                 "total_s": time.perf_counter() - start},
        versions={"ltbench": bench.__version__, "torch": torch.__version__, "open_clip": open_clip.__version__})


def _resolved(planned, resolved) -> dict:
    """The recipe fields the regime filled in (automatic sizes), with the values it used."""
    before = dataclasses.asdict(planned)
    return {k: v for k, v in dataclasses.asdict(resolved).items() if before.get(k) != v}
