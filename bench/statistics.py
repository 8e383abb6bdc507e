"""Class-conditional feature statistics: how far a regime moves the train and test feature distributions apart.

For every class c and split s: the spread 1 − cos(f_i, μ_c,s) of each sample to its split's own class mean
(the papers' plots), and the pairwise spread 1 − mean cos over distinct same-class pairs, which is not biased
by class size (a 2-image class sits close to its own mean). The train/test gap of a class compares the two
splits: 1-D Wasserstein distance between the spread distributions, difference of mean spreads, difference of
pairwise spreads (the headline: heavy fine-tuning collapses tail *training* features, test ones spread out).

Three measures from the literature, all in float64 over the same chunks (never an N×N or K×D×D tensor):
- the Fréchet distance between a class's train and test feature Gaussians with diagonal covariances (Heusel et
  al. 2017 with Σ diagonal): ‖μ_tr − μ_te‖² + Σ_d (σ_tr,d − σ_te,d)², σ the population std; NaN for a class with
  fewer than two images in either split (no covariance), and the summaries count those classes;
- NC1 (Papyan, Han & Donoho, PNAS 2020) per split: Tr(Σ_W Σ_B^†)/K over the K classes with at least two images
  in the split, Σ_c the class's population covariance, Σ_W the mean of the Σ_c (classes weighted equally: on
  long-tail data a sample-weighted mean is the head's), Σ_B the population covariance of the K class means around
  their mean, † the pseudo-inverse (`between_class_precision`).
  Per class v_c = Tr(Σ_c Σ_B^†)/K, so that the split's NC1 is the mean of the v_c and a group's the mean over its
  classes; Tr(Σ_c P) is the mean of (x − μ_c)ᵀP(x − μ_c) over the class's rows;
- linear CKA (Kornblith et al., ICML 2019) between the features and the pretrained tower's features of the same
  images: ‖ỸᵀX̃‖²_F / (‖X̃ᵀX̃‖_F ‖ỸᵀỸ‖_F) on centred rows, over a whole split and the rows of each group's
  classes (p×q cross products summed chunk by chunk, centred by their sums), and per class (the n×n Gram form
  ⟨X̃X̃ᵀ, ỸỸᵀ⟩ / (‖X̃X̃ᵀ‖ ‖ỸỸᵀ‖) below D images, else cross products; NaN below 3 images). The same tensor on
  both sides (a frozen tower) is 1 by definition and not computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance

HIST_EDGES = np.linspace(0.0, 1.0, 41)  # fixed bins of 1 − cos; larger values land in the last bin
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
SPLITS = ("train", "test")
CHUNK_ROWS = 32_768  # rows converted to float64 at a time: 192 MB at 768 dims
COS_EPS = 1e-8  # F.cosine_similarity's floor on a norm


def _row_chunks(features: torch.Tensor, labels: torch.Tensor, chunk_rows: int):
    """(float64 rows, their labels), `chunk_rows` rows at a time: the float64 copy of an iNaturalist-size feature
    matrix alone is 2.7 GB, a chunk of it a few hundred MB. The rows are a copy in one buffer reused for every
    chunk (a fresh one would be page-faulted in again each time): the caller may overwrite them, and must be done
    with them before the next chunk."""
    buffer = torch.empty(min(chunk_rows, len(labels)), features.shape[1], dtype=torch.float64)
    for start in range(0, len(labels), chunk_rows):
        row_labels = labels[start:start + chunk_rows]
        yield buffer[:len(row_labels)].copy_(features[start:start + chunk_rows]), row_labels


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """K×D float64 means (NaN rows for classes without samples), summed in float64 chunk by chunk."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        sums.index_add_(0, row_labels, rows)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return (sums / counts[:, None]).masked_fill(counts[:, None] == 0, float("nan"))


def pairwise_spread(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                    chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Per class 1 − mean cos over distinct pairs, mean cos = (‖Σ f̂‖² − n) / (n(n − 1)); NaN below 2 samples."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        unit = rows.div_(rows.norm(dim=-1, keepdim=True).clamp_min(1e-12))  # F.normalize, in place
        sums.index_add_(0, row_labels, unit)
    n = torch.bincount(labels, minlength=num_classes).double()
    mean_cos = (sums.pow(2).sum(dim=1) - n) / (n * (n - 1))
    return (1.0 - mean_cos).masked_fill(n < 2, float("nan")).numpy()


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Row norms floored at 1e-8, by which F.cosine_similarity divides each side before its dot product."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(COS_EPS)


def _spreads(features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor, chunk_rows: int) -> np.ndarray:
    """1 − cos(f_i, μ_{y_i}) per sample in float64, without the N×D tensor of gathered means: the means are
    normalised once, each chunk of rows meets only its own slice of them, gathered into one reused buffer."""
    unit_means = means / _norms(means)
    gathered = torch.empty(min(chunk_rows, len(labels)), means.shape[1], dtype=torch.float64)
    spread = [torch.empty(0, dtype=torch.float64)]  # an empty split has no chunk
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        unit_mean = torch.index_select(unit_means, 0, row_labels, out=gathered[:len(row_labels)])
        spread.append(1.0 - rows.div_(_norms(rows)).mul_(unit_mean).sum(dim=-1))
    return torch.cat(spread).numpy()


def between_class_precision(means: torch.Tensor, counts: torch.Tensor) -> torch.Tensor | None:
    """P = Σ_B^† (D×D) over the K classes with at least two images, Σ_B = M̃ᵀM̃ / K the population covariance of
    their means M around the mean of those means; None with fewer than two such classes or means all equal (no
    between-class spread: NC1 is undefined, not 0). From the SVD M̃ = USVᵀ, P = K·V S⁻² Vᵀ over the singular values
    above max(K, D)·eps of the largest (numpy's rank cutoff), applied to S rather than to S² so that rounding noise
    in the null space of a rank-deficient Σ_B (K ≤ D) stays far below it."""
    kept = means[counts >= 2]
    if len(kept) < 2:
        return None
    centred = kept - kept.mean(dim=0)
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    rank = singular > singular.max() * max(centred.shape) * torch.finfo(torch.float64).eps
    if not rank.any():
        return None
    directions = right[rank]
    return len(kept) * (directions.T / singular[rank].square()) @ directions


def _within_class(features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor,
                  precision: torch.Tensor | None, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class Σ_i (x_i − μ_c)ᵀP(x_i − μ_c) (K; NaN without P) and Σ_i (x_i − μ_c)² (K×D), in one float64 pass:
    the deviations overwrite the chunk, and the buffer the class means are gathered into takes their product with
    P, so that the pass holds two chunk buffers as `_spreads` does."""
    quadratic = torch.zeros(len(means), dtype=torch.float64)
    squares = torch.zeros_like(means)
    scratch = torch.empty(min(chunk_rows, len(labels)), means.shape[1], dtype=torch.float64)
    for rows, row_labels in _row_chunks(features, labels, chunk_rows):
        work = scratch[:len(row_labels)]
        deviations = rows.sub_(torch.index_select(means, 0, row_labels, out=work))
        if precision is not None:
            quadratic.index_add_(0, row_labels, torch.mm(deviations, precision, out=work).mul_(deviations).sum(1))
        squares.index_add_(0, row_labels, deviations.square_())
    return quadratic if precision is not None else quadratic.fill_(float("nan")), squares


def split_statistics(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                     chunk_rows: int = CHUNK_ROWS) -> dict[str, np.ndarray]:
    """One split's per-class arrays; "_values" keeps each class's spreads for the train/test Wasserstein gap,
    "_means" and "_std" the float64 class means and population stds (NaN rows for absent classes) for the Fréchet
    distance. `nc1`: each class's term v_c of the split's NC1 (NaN below two images)."""
    means = class_means(features, labels, num_classes, chunk_rows=chunk_rows)
    counts = torch.bincount(labels, minlength=num_classes)
    quadratic, squares = _within_class(features, labels, means, between_class_precision(means, counts), chunk_rows)
    kept = counts >= 2
    nc1 = (quadratic / counts / kept.sum()).masked_fill(~kept, float("nan"))
    spread = _spreads(features, labels, means, chunk_rows)
    order = np.argsort(labels.numpy(), kind="stable")
    per_class = np.split(spread[order], np.cumsum(np.bincount(labels.numpy(), minlength=num_classes))[:-1])
    quantiles = np.full((num_classes, len(QUANTILES)), np.nan)
    hist = np.zeros((num_classes, len(HIST_EDGES) - 1), dtype=np.int32)
    mean_spread = np.full(num_classes, np.nan)
    for c, values in enumerate(per_class):
        if len(values):
            quantiles[c] = np.quantile(values, QUANTILES)
            mean_spread[c] = values.mean()
            hist[c] = np.histogram(np.clip(values, 0.0, HIST_EDGES[-1] - 1e-9), HIST_EDGES)[0]
    return {"count": np.bincount(labels.numpy(), minlength=num_classes), "means": means.float().numpy(),
            "mean_spread": mean_spread,
            "pairwise_spread": pairwise_spread(features, labels, num_classes, chunk_rows=chunk_rows),
            "quantiles": quantiles, "hist": hist, "nc1": nc1.numpy(), "_values": per_class, "_means": means,
            "_std": (squares / counts[:, None]).sqrt()}


def class_statistics(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], num_classes: int,
                     frozen: dict[str, torch.Tensor] | None = None, *,
                     chunk_rows: int = CHUNK_ROWS) -> dict[str, np.ndarray]:
    """Per-class arrays (no raw features) for the train and test splits, their gaps and Fréchet distance, and,
    when `frozen` features (the pretrained tower's, of the same images) are given, the drift of each class mean
    from them and each class's linear CKA against them (`{split}_class_cka`)."""
    out: dict[str, np.ndarray] = {}
    values, moments = {}, {}
    for split in SPLITS:
        stats = split_statistics(features[split], labels[split], num_classes, chunk_rows=chunk_rows)
        values[split] = stats.pop("_values")
        moments[split] = stats.pop("_means"), stats.pop("_std")
        out.update({f"{split}_{k}": v for k, v in stats.items()})
        if frozen is not None:
            frozen_means = class_means(frozen[split], labels[split], num_classes, chunk_rows=chunk_rows)
            out[f"{split}_drift"] = (1.0 - F.cosine_similarity(torch.from_numpy(stats["means"]).double(),
                                                               frozen_means, dim=-1)).numpy()
            out[f"{split}_class_cka"] = class_cka(features[split], frozen[split], labels[split], num_classes,
                                                  chunk_rows=chunk_rows)
    out["gap_wasserstein"] = np.array([wasserstein_distance(a, b) if len(a) and len(b) else np.nan
                                       for a, b in zip(values["train"], values["test"])])
    out["gap_mean"] = out["test_mean_spread"] - out["train_mean_spread"]
    out["gap_pairwise"] = out["test_pairwise_spread"] - out["train_pairwise_spread"]
    (train_mean, train_std), (test_mean, test_std) = moments["train"], moments["test"]
    frechet = (train_mean - test_mean).square().sum(1) + (train_std - test_std).square().sum(1)
    defined = (out["train_count"] >= 2) & (out["test_count"] >= 2)
    out["frechet"] = np.where(defined, frechet.numpy(), np.nan)
    return out


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    """numerator / denominator as a float; NaN where the denominator is 0 (a representation without spread)."""
    return float(numerator / denominator) if denominator > 0 else float("nan")


@dataclass
class CrossProducts:
    """Running float64 sums over rows seen in two representations (x: p columns, y: q): n, Σx, Σy, XᵀX, YᵀY, XᵀY,
    each row less a fixed shift (by default the mean of the first rows added), which keeps the sums near the
    spread so that centring by sums (XᵀY − Σx Σyᵀ / n) cancels little; sums with the same shift add up (`merge`).
    On the device of the rows (a tower's block outputs stay on the GPU)."""

    shift_x: torch.Tensor | None = None
    shift_y: torch.Tensor | None = None
    n: int = 0
    sums: tuple[torch.Tensor, ...] | None = None  # Σx, Σy, XᵀX, YᵀY, XᵀY

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add rows (float64); they are shifted in place."""
        if not len(x):
            return
        if self.shift_x is None:
            self.shift_x, self.shift_y = x.mean(dim=0), y.mean(dim=0)
        x, y = x.sub_(self.shift_x), y.sub_(self.shift_y)
        if self.sums is None:
            self.sums = tuple(torch.zeros(shape, dtype=torch.float64, device=x.device) for shape in (
                x.shape[1], y.shape[1], (x.shape[1],) * 2, (y.shape[1],) * 2, (x.shape[1], y.shape[1])))
        sx, sy, xx, yy, xy = self.sums
        self.n += len(x)
        sx.add_(x.sum(dim=0))
        sy.add_(y.sum(dim=0))
        xx.addmm_(x.T, x)
        yy.addmm_(y.T, y)
        xy.addmm_(x.T, y)

    def merge(self, other: "CrossProducts") -> "CrossProducts":
        """The sums over both sets of rows (the same shift, or one of them empty)."""
        if other.sums is None or self.sums is None:
            return self if other.sums is None else other
        if not (torch.equal(self.shift_x, other.shift_x) and torch.equal(self.shift_y, other.shift_y)):
            raise ValueError("cross products with different shifts do not add up")
        return CrossProducts(self.shift_x, self.shift_y, self.n + other.n,
                             tuple(a + b for a, b in zip(self.sums, other.sums)))

    def cka(self) -> float:
        """Linear CKA of the rows added; NaN below 3 rows or without spread on a side."""
        if self.n < 3:
            return float("nan")
        sx, sy, xx, yy, xy = self.sums
        xy = xy - torch.outer(sx, sy) / self.n
        xx = xx - torch.outer(sx, sx) / self.n
        yy = yy - torch.outer(sy, sy) / self.n
        return _ratio(xy.square().sum(), torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy))


def _gram_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of a few rows (float64) from their n×n Gram matrices: ⟨K, L⟩ / (‖K‖ ‖L‖), K = X̃X̃ᵀ, L = ỸỸᵀ."""
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    gram_x, gram_y = x @ x.T, y @ y.T
    return _ratio((gram_x * gram_y).sum(), torch.linalg.matrix_norm(gram_x) * torch.linalg.matrix_norm(gram_y))


def _class_rows(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Row indices sorted by class (stable), and where each class starts in them and how many it has."""
    counts = np.bincount(labels.numpy(), minlength=num_classes)
    return torch.argsort(labels, stable=True), np.concatenate([[0], np.cumsum(counts)[:-1]]), counts


def class_cka(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
              chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Per class the linear CKA of its rows in x against the same rows in y (K; NaN below 3 images): the Gram
    form below D images, else cross products summed `chunk_rows` // 2 rows at a time (the memory of one chunk in
    two float64 representations). 1 where x is y."""
    order, starts, counts = _class_rows(labels, num_classes)
    out = np.full(num_classes, np.nan)
    if x is y:
        out[counts >= 3] = 1.0
        return out
    dim = max(x.shape[1], y.shape[1])
    for c in np.flatnonzero(counts >= 3):
        rows = order[starts[c]:starts[c] + counts[c]]
        if counts[c] < dim:
            out[c] = _gram_cka(x[rows].double(), y[rows].double())
            continue
        sums, step = CrossProducts(), max(1, chunk_rows // 2)
        for start in range(0, len(rows), step):
            piece = rows[start:start + step]
            sums.add(x[piece].double(), y[piece].double())
        out[c] = sums.cka()
    return out


def _pooled_cka(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, groups: dict[str, np.ndarray],
                num_classes: int, chunk_rows: int) -> dict[str, float]:
    """One split's CKA over all rows ("all") and over the rows of each group's classes (the groups are disjoint):
    the rows are read in group order, `chunk_rows` // 2 at a time in each representation (two float64 buffers,
    the memory of one chunk), and each group's contiguous run of a chunk goes to its own cross products, which
    share one shift and so add up to the whole split's."""
    bucket = np.full(num_classes, len(groups))  # classes in no group: one more bucket, counted in "all"
    for index, classes in enumerate(groups.values()):
        if (bucket[classes] != len(groups)).any():
            raise ValueError("the groups of a pooled CKA must not share a class")
        bucket[classes] = index
    buckets = torch.from_numpy(bucket)[labels]
    counts = np.bincount(buckets.numpy(), minlength=len(groups) + 1)
    if x is y:
        return {name: 1.0 if n >= 3 else float("nan") for name, n in zip(["all", *groups], [len(labels), *counts])}
    step = max(1, chunk_rows // 2)
    start_rows = torch.arange(min(step, len(labels)))
    shift = x[start_rows].double().mean(dim=0), y[start_rows].double().mean(dim=0)
    sums = [CrossProducts(*shift) for _ in range(len(groups) + 1)]
    order = torch.argsort(buckets, stable=True)
    x_rows, y_rows = (torch.empty(min(step, len(labels)), t.shape[1], dtype=torch.float64) for t in (x, y))
    for start in range(0, len(labels), step):
        rows = order[start:start + step]
        xs, ys = x_rows[:len(rows)].copy_(x[rows]), y_rows[:len(rows)].copy_(y[rows])
        runs = torch.unique_consecutive(buckets[rows], return_counts=True)
        offset = 0
        for index, length in zip(*(t.tolist() for t in runs)):
            sums[index].add(xs[offset:offset + length], ys[offset:offset + length])
            offset += length
    total = sums[0]
    for part in sums[1:]:
        total = total.merge(part)
    return {"all": total.cka(), **{name: sums[index].cka() for index, name in enumerate(groups)}}


def pooled_cka(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
               groups: dict[str, np.ndarray], num_classes: int, *,
               chunk_rows: int = CHUNK_ROWS) -> dict[str, dict[str, float]]:
    """Per split the linear CKA of the features against the `frozen` (pretrained) features of the same images,
    over the whole split ("all") and over the rows of each group's classes; 1 where they are the same tensor."""
    return {split: _pooled_cka(features[split], frozen[split], labels[split], groups, num_classes, chunk_rows)
            for split in SPLITS}


GROUP_SCALARS = ("gap_pairwise", "gap_mean", "gap_wasserstein", "train_pairwise_spread", "test_pairwise_spread",
                 "train_mean_spread", "test_mean_spread", "train_drift", "test_drift", "frechet", "train_nc1",
                 "test_nc1")


def _mean(values: np.ndarray) -> float | None:
    """The mean of the values that are not NaN; None when there is none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def _number(value: float) -> float | None:
    return None if np.isnan(value) else value


def group_summary(stats: dict[str, np.ndarray], groups: dict[str, np.ndarray],
                  cka: dict[str, dict[str, float]] | None = None) -> dict[str, dict]:
    """Mean of each per-class scalar over the classes of each group (None for an empty group or no value), the
    number of its classes without a Fréchet distance (`frechet_undefined`), and, from `pooled_cka`, the CKA over
    the rows of its classes (`{split}_cka`)."""
    summary = {}
    for group, classes in groups.items():
        row = {key: _mean(stats[key][classes]) for key in GROUP_SCALARS if key in stats}
        if "frechet" in stats:
            row["frechet_undefined"] = int(np.isnan(stats["frechet"][classes]).sum())
        row.update({f"{split}_cka": _number(by_group[group]) for split, by_group in (cka or {}).items()})
        summary[group] = row
    return summary


def job_summary(stats: dict[str, np.ndarray], cka: dict[str, dict[str, float]] | None = None) -> dict:
    """The job's scalars: the mean Fréchet distance over the classes that have one and how many have none, each
    split's NC1 (the mean of its classes' terms), and, from `pooled_cka`, each split's CKA over all its rows."""
    return {"frechet": _mean(stats["frechet"]), "frechet_undefined": int(np.isnan(stats["frechet"]).sum()),
            **{f"{split}_nc1": _mean(stats[f"{split}_nc1"]) for split in SPLITS},
            **{f"{split}_cka": _number(by_group["all"]) for split, by_group in (cka or {}).items()}}


def summarised_statistics(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], num_classes: int,
                          frozen: dict[str, torch.Tensor], groups: dict[str, np.ndarray], *,
                          chunk_rows: int = CHUNK_ROWS) -> tuple[dict[str, np.ndarray], dict]:
    """Everything a job measures on its features: the per-class arrays (`class_statistics`) and their summary,
    per group (`group_summary`, with the CKA over each group's rows) and for the job (`job_summary`)."""
    stats = class_statistics(features, labels, num_classes, frozen, chunk_rows=chunk_rows)
    cka = pooled_cka(features, labels, frozen, groups, num_classes, chunk_rows=chunk_rows)
    return stats, {"groups": group_summary(stats, groups, cka), "job": job_summary(stats, cka)}
