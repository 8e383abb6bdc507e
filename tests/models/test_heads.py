import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from bench.data import build_dataset
from bench.models import load_backbone
from bench.models.backbone import input_mean_std, input_size
from bench.models.head_init import PER_CLASS, initialise_head, per_class_subset, probe_weights
from bench.models.heads import (CosineClassifier, L2NormClassifier, LayerNormClassifier, LinearClassifier,
                                make_classifier)
from bench.registry import get_regime
from bench.training.context import JobContext
from tests.conftest import make_job

KINDS = {"cosine": CosineClassifier, "linear": LinearClassifier, "l2norm": L2NormClassifier,
         "layernorm": LayerNormClassifier}


def test_l2norm_and_layernorm_heads_against_their_definitions():
    torch.manual_seed(0)
    x = 3.0 * torch.randn(5, 16) + 1.0
    l2, ln = L2NormClassifier(16, 4), LayerNormClassifier(16, 4)
    for head in (l2, ln):
        assert head.bias is None and [n for n, _ in head.named_parameters()] == ["weight"]
        torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(4))  # rows of unit norm at random init
        head.weight.data.mul_(torch.arange(1.0, 5.0).unsqueeze(1))  # the forward normalises the rows itself
    unit = lambda w: w / w.norm(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(l2(x), x @ unit(l2.weight).T)  # no scale, the feature not normalised
    standardised = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-12)
    torch.testing.assert_close(ln(x), standardised @ unit(ln.weight).T)


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return load_backbone("ltbench-tiny", "none", ["red stripes", "blue_checks", "green dots"], torch.device("cpu"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("init", ["semantic", "random", "class_mean", "linear_probing"])
def test_every_head_takes_every_init(backbone, kind, init):
    head = make_classifier(kind, init, backbone, 3, 25.0)
    assert type(head) is KINDS[kind] and head.weight.shape == (3, 128)
    if init == "semantic":
        torch.testing.assert_close(head.weight, backbone.semantic_weights())
    else:  # random; the image inits start random until initialise_head overwrites them
        torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(3))


def test_unknown_head_or_init_is_named(backbone):
    with pytest.raises(ValueError, match=r"unknown classifier 'svm'; valid: cosine, linear, l2norm, layernorm"):
        make_classifier("svm", "random", backbone, 3, 25.0)
    with pytest.raises(ValueError, match=r"unknown classifier init 'zeros'; valid: .*class_mean, linear_probing"):
        make_classifier("cosine", "zeros", backbone, 3, 25.0)


def test_subset_keeps_at_most_100_random_images_of_every_class():
    labels = np.repeat(np.arange(4), [250, 100, 30, 1])
    np.random.default_rng(1).shuffle(labels)
    chosen = per_class_subset(labels, PER_CLASS, seed=0)
    assert np.all(np.diff(chosen) > 0)
    assert np.bincount(labels[chosen]).tolist() == [100, 100, 30, 1]
    assert np.array_equal(per_class_subset(labels, PER_CLASS, seed=0), chosen)
    assert not np.array_equal(per_class_subset(labels, PER_CLASS, seed=1), chosen)


SMALL = {"num_classes": "6", "max_per_class": "150", "imbalance_ratio": "10"}  # one class above the 100 cap


def _built(regime: str, init: str, data_overrides: dict = SMALL, **changes):
    job = make_job(regime, data_overrides=data_overrides, classifier_init=init, **changes)
    data = build_dataset(job.dataset_config, job.runtime.data_root)
    torch.manual_seed(0)
    backbone = load_backbone(job.model, job.pretrained, data.classnames, torch.device("cpu"), seed=0)
    recipe = get_regime(regime).resolve(job.recipe, data.num_classes, backbone)
    model = get_regime(regime).build(backbone, data, recipe)
    return model, data, recipe, JobContext.create(job)


def _features_by_hand(model, data, seed: int, interpolation=InterpolationMode.BICUBIC
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """The subset's images through Resize(size, interpolation) + CenterCrop + Normalize and the model, in one
    batch."""
    size = input_size(model.visual)
    mean, std = input_mean_std(model.visual)
    plain = T.Compose([T.Resize(size, interpolation=interpolation), T.CenterCrop(size), T.ToTensor(),
                       T.Normalize(mean, std)])
    chosen = per_class_subset(data.train.labels, PER_CLASS, seed)
    model.eval()
    with torch.no_grad():
        features = model.features(torch.stack([plain(data.train.load(int(i))) for i in chosen]))
    return features, data.train.labels[chosen]


def test_class_mean_init_is_the_normalised_mean_feature_with_the_regimes_modules_attached():
    model, data, recipe, ctx = _built("ssf", "class_mean")  # SSF's random init changes the features
    features, labels = _features_by_hand(model, data, seed=0)
    expected = torch.stack([F.normalize(features[labels == c].mean(0), dim=0) for c in range(data.num_classes)])
    initialise_head(model, data, recipe, ctx)
    torch.testing.assert_close(model.head.weight, expected, atol=1e-5, rtol=1e-5)
    bare, _, _, _ = _built("linear_probe", "class_mean")  # the tower alone gives other means
    bare_features, _ = _features_by_hand(bare, data, seed=0)
    assert not torch.allclose(bare_features, features, atol=1e-3)


def test_class_mean_init_sees_the_training_images_through_the_recipes_interpolation():
    """LIFT resizes its classifier-init images bilinear (torchvision's default), LIFT-plus bicubic."""
    larger = {**SMALL, "image_size": "45"}  # images the resize actually resamples
    model, data, recipe, ctx = _built("linear_probe", "class_mean", larger, interpolation="bilinear")
    features, labels = _features_by_hand(model, data, 0, InterpolationMode.BILINEAR)
    expected = torch.stack([F.normalize(features[labels == c].mean(0), dim=0) for c in range(data.num_classes)])
    initialise_head(model, data, recipe, ctx)
    torch.testing.assert_close(model.head.weight, expected, atol=1e-5, rtol=1e-5)
    bicubic, _ = _features_by_hand(model, data, 0)
    assert not torch.allclose(bicubic, features, atol=1e-4)


def test_linear_probing_init_is_the_normalised_balanced_logistic_regression():
    sklearn = pytest.importorskip("sklearn.linear_model")
    model, data, recipe, ctx = _built("linear_probe", "linear_probing")
    features, labels = _features_by_hand(model, data, seed=0)
    probe = sklearn.LogisticRegression(solver="lbfgs", max_iter=100, C=1.0, class_weight="balanced")
    expected = F.normalize(torch.from_numpy(probe.fit(features.numpy(), labels).coef_).float(), dim=1)
    initialise_head(model, data, recipe, ctx)
    assert model.head.weight.shape == (data.num_classes, 128)
    torch.testing.assert_close(model.head.weight, expected, atol=1e-3, rtol=1e-3)


def test_two_class_probe_weights_are_opposite_rows():
    pytest.importorskip("sklearn")
    torch.manual_seed(0)
    labels = torch.arange(40) % 2
    features = torch.randn(40, 8) + 2.0 * labels.unsqueeze(1).float()
    weights = probe_weights(features, labels)
    assert weights.shape == (2, 8)
    torch.testing.assert_close(weights[0], -weights[1])
    assert (features[labels == 1] @ weights[1]).mean() > (features[labels == 0] @ weights[1]).mean()


def test_other_inits_and_zero_shot_leave_the_head_alone():
    model, data, recipe, ctx = _built("linear_probe", "random")
    before = model.head.weight.detach().clone()
    initialise_head(model, data, recipe, ctx)
    assert torch.equal(model.head.weight, before)
    zero_shot, data, recipe, ctx = _built("zero_shot", "class_mean")
    initialise_head(zero_shot, data, recipe, ctx)  # a head without class weights: nothing to initialise
