"""CLIP ResNets and ViTs, and the reference's timm ImageNet backbones, with random weights (`--pretrained none`).

Building a ViT-L tower and running one image through it takes 7-11 s on 2 idle CPU cores (30-50 s on a loaded
machine): those four run only with LTBENCH_TEST_LARGE_BACKBONES=1; the others (1-3 s) always do.
"""
import copy
import dataclasses
import os

import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from timm.models.vision_transformer import Block
from torch import nn

from bench.data import build_dataset, dataset_config
from bench.models import WeightsUnavailableError, create_clip, image_features, load_backbone
from bench.models.backbone import Backbone, activation_of, input_mean_std, input_size
from bench.models.heads import ZeroShotHead, make_classifier
from bench.models.timm_towers import IMAGENET_MODELS
from bench.models.towers import ResNetTower, ViTTower
from bench.models.tunable_block import TunableBlock, projections
from regimes import get_regime

CLIP_MEAN_STD = (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
HALF = ((0.5,) * 3, (0.5,) * 3)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# name: feature width, input size, mean/std (LIFT-plus configs/backbone/*.yaml), kind
BACKBONES = {
    "RN50": (1024, 224, CLIP_MEAN_STD, ResNetTower), "RN101": (512, 224, CLIP_MEAN_STD, ResNetTower),
    "ViT-B-32": (768, 224, CLIP_MEAN_STD, VisionTransformer), "ViT-L-14": (1024, 224, CLIP_MEAN_STD, VisionTransformer),
    "ViT-L-14-336": (1024, 336, CLIP_MEAN_STD, VisionTransformer),
    "in21k_vit_b16": (768, 224, HALF, ViTTower), "in21k_vit_b16_384": (768, 384, HALF, ViTTower),
    "in21k_vit_l16": (1024, 224, HALF, ViTTower), "in21k_vit_l16_384": (1024, 384, HALF, ViTTower),
    "in1k_rn50": (2048, 224, IMAGENET, ResNetTower), "in1k_rn101": (2048, 224, IMAGENET, ResNetTower),
    "in1k_rn152": (2048, 224, IMAGENET, ResNetTower),
}
LARGE_TOWERS = ("ViT-L-14", "ViT-L-14-336", "in21k_vit_l16", "in21k_vit_l16_384")
LARGE = pytest.mark.skipif(not os.environ.get("LTBENCH_TEST_LARGE_BACKBONES"),
                           reason="large tower: set LTBENCH_TEST_LARGE_BACKBONES=1")
RN50_BN_BIASES = sum(6 * p * n + 4 * p for p, n in zip((64, 128, 256, 512), (3, 4, 6, 3)))  # bn1+bn2+bn3, downsample


@pytest.mark.parametrize("name", [pytest.param(n, marks=LARGE) if n in LARGE_TOWERS else n for n in BACKBONES])
def test_each_backbone_builds_with_random_weights(name):
    width, size, mean_std, kind = BACKBONES[name]
    torch.manual_seed(0)
    visual = create_clip(name, "none").visual
    assert isinstance(visual, kind) and input_size(visual) == size and input_mean_std(visual) == mean_std
    with torch.no_grad():
        assert image_features(visual, torch.randn(1, 3, size, size)).shape == (1, width)


def test_the_timm_table_matches_timm_and_the_reference():
    for name, spec in IMAGENET_MODELS.items():
        cfg = timm.models.get_pretrained_cfg(f"{spec.architecture}.{spec.tag}")
        assert cfg.input_size[-1] == spec.size, name  # the architecture's own input size
        assert timm.models.get_pretrained_cfg(spec.architecture).tag == spec.tag  # timm's pretrained=True
        assert (spec.mean, spec.std) == (HALF if name.startswith("in21k") else IMAGENET)
        assert ("in21k_ft_in1k" in spec.tag) == name.startswith("in21k")


@pytest.fixture(scope="module")
def synthetic():
    return build_dataset(dataset_config("synthetic_lt"), "data", False)


@pytest.fixture(scope="module")
def rn50(synthetic):
    torch.manual_seed(0)
    return load_backbone("RN50", "none", synthetic.classnames)


def _x(n=2, size=224):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_clip_resnet_feature_is_the_attention_pool_output(rn50):
    trunk, x = rn50.visual.trunk, _x()
    with torch.no_grad():
        by_hand = trunk.attnpool(trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(trunk.stem(x))))))
        torch.testing.assert_close(image_features(rn50.visual, x), by_hand)
    assert activation_of(rn50.visual) == "relu"


def test_clip_resnet_semantic_init_and_zero_shot_have_no_image_projection(rn50, synthetic):
    tokens = open_clip.get_tokenizer("RN50")([f"a photo of a {c}." for c in synthetic.classnames])
    torch.manual_seed(0)
    clip = create_clip("RN50", "none")  # same seed: the same weights as rn50
    with torch.no_grad():
        text = F.normalize(clip.encode_text(tokens), dim=-1)
        head = make_classifier("cosine", "semantic", rn50, synthetic.num_classes, 25.0)
        torch.testing.assert_close(head.weight, text)  # normalize(t·W_text), no W_img
        f = torch.randn(3, 1024)
        zero_shot = ZeroShotHead(rn50.image_projection, rn50.text_embeddings, rn50.logit_scale)
        torch.testing.assert_close(zero_shot(f), rn50.logit_scale * F.normalize(f, dim=-1) @ text.T)


def _trainable(model):
    return {n: p.numel() for n, p in model.trainable_parameters() if not n.startswith("head.")}


def _rn50_model(rn50, synthetic, regime):
    return get_regime(regime).build(copy.deepcopy(rn50), synthetic, get_regime(regime).recipe)


def test_full_trains_the_residual_blocks_not_stem_or_pool(rn50, synthetic):
    model = _rn50_model(rn50, synthetic, "full")
    trunk = model.visual.trunk
    stem = [trunk.conv1, trunk.bn1, trunk.conv2, trunk.bn2, trunk.conv3, trunk.bn3, trunk.attnpool]
    expected = sum(p.numel() for p in trunk.parameters()) - sum(p.numel() for m in stem for p in m.parameters())
    assert sum(_trainable(model).values()) == expected
    assert all(n.startswith("visual.trunk.layer") for n in _trainable(model))


def test_bitfit_trains_the_batchnorm_biases_of_the_residual_blocks(rn50, synthetic):
    model = _rn50_model(rn50, synthetic, "bitfit")
    trainable = _trainable(model)
    assert sum(trainable.values()) == RN50_BN_BIASES and all(n.endswith("bias") for n in trainable)


def test_ssf_scales_and_shifts_the_pooled_feature(rn50, synthetic):
    model = _rn50_model(rn50, synthetic, "ssf")
    assert _trainable(model) == {"visual.tuners.pooled.scale": 1024, "visual.tuners.pooled.shift": 1024}
    ssf, x = model.visual.tuners["pooled"], _x(1)
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), model.visual.trunk(x) * ssf.scale + ssf.shift)


def test_batchnorm_keeps_its_running_statistics_while_full_fine_tuning(rn50, synthetic):
    model = _rn50_model(rn50, synthetic, "full")
    before = {n: b.clone() for n, b in model.visual.named_buffers()}
    model.train()
    assert not any(m.training for m in model.visual.modules() if isinstance(m, nn.BatchNorm2d))
    model(_x()).sum().backward()
    assert model.visual.trunk.layer1[0].bn1.weight.grad is not None  # BN affine trains, its statistics do not
    assert all(torch.equal(b, before[n]) for n, b in model.visual.named_buffers())


@pytest.mark.parametrize("regime", ["lora", "adapter", "adaptformer", "lift_plus", "vpt", "sparse", "ln_tuning",
                                    "partial"])
def test_regimes_without_a_resnet_form_refuse_it(rn50, regime):
    with pytest.raises(ValueError, match=rf"^{regime} needs a ViT tower: RN50 is a ResNet, without attention "
                                         rf"blocks; regimes that run on ResNets: bitfit, clip_adapter, coop, full, "
                                         rf"linear_probe, ssf, zero_shot"):
        get_regime(regime).check(get_regime(regime).recipe, rn50)


def test_layers_do_not_apply_to_a_resnet(rn50):
    recipe = dataclasses.replace(get_regime("full").recipe, layers=2)
    with pytest.raises(ValueError, match=r"full.layers=2 on RN50: .*leave full.layers unset"):
        get_regime("full").check(recipe, rn50)


@pytest.fixture(scope="module")
def timm_resnet():
    torch.manual_seed(0)
    return create_clip("in1k_rn50", "none").visual


def test_timm_resnet_feature_is_the_average_pool(timm_resnet):
    x = _x(1)
    with torch.no_grad():
        torch.testing.assert_close(image_features(timm_resnet, x), timm_resnet.trunk.forward_features(x).mean((2, 3)))
    assert timm_resnet.feature_dim == 2048 and not timm_resnet.clip


def test_a_backbone_without_text_tower_needs_class_mean_and_refuses_zero_shot(timm_resnet):
    backbone = Backbone("in1k_rn50", timm_resnet, None, None)
    recipe = get_regime("linear_probe").recipe
    with pytest.raises(ValueError, match=r"linear_probe: classifier_init=semantic needs a CLIP text tower, and "
                                         r"in1k_rn50 \(an ImageNet backbone\) has none: add --set "
                                         r"linear_probe.classifier_init=class_mean"):
        get_regime("linear_probe").check(recipe, backbone)
    get_regime("linear_probe").check(dataclasses.replace(recipe, classifier_init="class_mean"), backbone)
    with pytest.raises(ValueError, match="classifier_init=semantic needs a CLIP text tower.*class_mean"):
        make_classifier("cosine", "semantic", backbone, 3, 25.0)
    with pytest.raises(ValueError, match=r"zero_shot needs a CLIP text tower, and in1k_rn50 .*use a CLIP model"):
        get_regime("zero_shot").check(get_regime("zero_shot").recipe, backbone)


def test_missing_timm_weights_name_the_tag_the_cache_and_the_ways_to_provide_them():
    with pytest.raises(WeightsUnavailableError) as info:
        create_clip("in1k_rn50", "openai")  # the default --pretrained: the reference's weights
    message = str(info.value)
    assert "timm/resnet50.a1_in1k" in message and "Hugging Face cache" in message
    assert "--pretrained /path/to/model.safetensors" in message and "--pretrained none" in message


def test_timm_weights_from_a_file_and_bad_tags(tmp_path, timm_resnet):
    path = tmp_path / "rn50.pth"
    torch.save(timm_resnet.trunk.state_dict(), path)
    loaded = create_clip("in1k_rn50", str(path)).visual
    assert all(torch.equal(a, b) for a, b in zip(timm_resnet.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(WeightsUnavailableError, match=r"'nope' is neither a timm weights tag of in1k_rn50.*a1h_in1k"):
        create_clip("in1k_rn50", "nope")
    with pytest.raises(ValueError, match="--quick-gelu applies to open_clip models"):
        create_clip("in1k_rn50", "none", quick_gelu=True)


# timm's ViT block through TunableBlock: a small block with layer scale (ls1/ls2) stands for the B/16 and L/16 ones

@pytest.fixture
def timm_block():
    torch.manual_seed(0)
    return Block(64, 4, qkv_bias=True, init_values=0.5).eval()


def test_tunable_block_computes_timms_block(timm_block):
    x = torch.randn(2, 10, 64)
    tunable = TunableBlock(timm_block, True, 10)
    torch.testing.assert_close(tunable(x), timm_block(x), atol=1e-5, rtol=1e-5)
    assert {n for n, _ in tunable.named_parameters()} == {n for n, _ in timm_block.named_parameters()}
    assert (tunable.width, tunable.mlp_width) == (64, 256)


def test_timm_sites_follow_their_projections(timm_block):
    x = torch.randn(2, 10, 64)
    tunable = TunableBlock(timm_block, True, 10)
    scales = {site: 1 + 0.1 * torch.randn(getattr(owner, weight).shape[0])
              for site, (owner, weight, _) in projections(timm_block).items()}
    for site, s in scales.items():
        tunable.attach(site, _Scale(s))
    out = tunable(x)
    with torch.no_grad():  # independent: the plain block with each scale folded into its projection
        for site, (owner, weight, bias) in projections(timm_block).items():
            getattr(owner, weight).mul_(scales[site][:, None])
            getattr(owner, bias).mul_(scales[site])
    torch.testing.assert_close(out, timm_block(x), atol=1e-4, rtol=1e-4)


class _Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, y):
        return y * self.s


def test_unsupported_timm_blocks_are_refused():
    with pytest.raises(ValueError, match=r"timm's plain ViT Block .* has attn.q_norm, attn.k_norm"):
        TunableBlock(Block(64, 4, qk_norm=True), True, 10)


@pytest.fixture(scope="module")
def small_timm_vit(synthetic):
    """A 32-px timm ViT-Tiny behind the same ViTTower as in21k_vit_b16 (4 patches: cheap)."""
    torch.manual_seed(0)
    trunk = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0).eval()
    return Backbone("vit-tiny", ViTTower("vit-tiny", trunk, 192, 32, *HALF, clip=False), None, None)


@pytest.mark.parametrize("regime", ["full", "bitfit", "ln_tuning", "lora", "adapter", "adaptformer", "vpt", "ssf",
                                    "sparse", "partial"])
def test_every_vit_regime_runs_on_a_timm_vit(small_timm_vit, synthetic, regime):
    backbone = copy.deepcopy(small_timm_vit)
    recipe = dataclasses.replace(get_regime(regime).recipe, classifier_init="random")
    x = _x(2, 32)
    with torch.no_grad():
        plain = backbone.visual(x)
    model = get_regime(regime).build(backbone, synthetic, recipe)
    trainable = [n for n, _ in model.trainable_parameters() if not n.startswith("head.")]
    assert trainable and all(n.startswith("visual.trunk.blocks.") for n in trainable)
    with torch.no_grad():
        features = model.features(x)
    assert features.shape == (2, 192)
    if regime not in ("vpt", "ssf"):  # the others start as no-ops
        torch.testing.assert_close(features, plain, atol=1e-5, rtol=1e-5)
