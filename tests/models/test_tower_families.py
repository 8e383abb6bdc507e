"""Towers past the references: open_clip models whose image tower is a timm model (SigLIP, EVA-02) and plain timm
ViTs by `timm/<name>` (ImageNet-21k augreg, DINOv2), on random weights: the feature each family's classifier
reads, its input size and normalisation, trainable counts by hand, and the regimes a family cannot serve."""
import copy
import dataclasses
import types

import open_clip
import pytest
import torch

from bench.models import WeightsUnavailableError, create_clip, image_features
from bench.models.backbone import backbone_of, input_mean_std, input_size
from bench.registry import get_regime

K, D, L = 100, 768, 12  # classes; ViT-B width and depth
NAMES = [f"class {i}" for i in range(K)]
HEAD = K * D
# LIFT+'s AdaptFormer at r = 2^floor(log2(100/24)) = 4 per block: LayerNorm, down, up, scale
LIFT_PLUS = L * (2 * D + (D * 4 + 4) + (4 * D + D) + 1) + HEAD
BITFIT = L * (D + 3 * D + D + D + 4 * D + D) + HEAD  # norm1, qkv, proj, norm2, fc1, fc2 biases
LORA = L * 2 * 2 * D * 2 + HEAD  # q and v, r = 2^floor(log2(100/48)) = 2


def _clip(name):
    torch.manual_seed(0)
    return create_clip(name, "none")


def _count(clip, name, regime):
    r = get_regime(regime)
    recipe = r.recipe if clip.visual.clip else dataclasses.replace(r.recipe, classifier_init="class_mean")
    text = torch.randn(K, D) if clip.visual.clip else None
    backbone = backbone_of(copy.deepcopy(clip), name, NAMES, text)
    r.check(recipe, backbone)
    model = r.build(backbone, types.SimpleNamespace(num_classes=K), recipe)
    return sum(p.numel() for _, p in model.trainable_parameters())


@pytest.fixture(scope="module")
def siglip():
    return _clip("ViT-B-16-SigLIP")


def test_siglip_feature_is_its_attention_pool_in_the_joint_space(siglip):
    tower = siglip.visual
    assert (tower.pool_type, tower.num_prefix, tower.num_tokens, input_size(tower), tower.clip) == ("map", 0, 196, 224,
                                                                                                    True)
    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-16-SigLIP")  # the same random draw, untouched
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(image_features(tower, x), reference.encode_image(x), atol=1e-5, rtol=1e-5)
    backbone = backbone_of(siglip, "ViT-B-16-SigLIP", NAMES)
    assert torch.equal(backbone.image_projection, torch.eye(D))  # no head: the pooled feature is the embedding


def test_siglip_trainable_counts_and_vpt_refused(siglip):
    assert _count(siglip, "ViT-B-16-SigLIP", "lift_plus") == LIFT_PLUS
    assert _count(siglip, "ViT-B-16-SigLIP", "bitfit") == BITFIT
    assert _count(siglip, "ViT-B-16-SigLIP", "lora") == LORA
    with pytest.raises(ValueError, match=r"vpt inserts prompts after the CLS token .*ViT-B-16-SigLIP pools its tokens "
                                         r"\('map'\)"):
        _count(siglip, "ViT-B-16-SigLIP", "vpt")


def test_eva02_takes_the_regimes_that_train_its_own_tensors_and_refuses_the_rest():
    eva = _clip("EVA02-B-16")
    assert (eva.visual.pool_type, eva.visual.num_prefix, eva.visual.clip) == ("tok", 1, True)
    blocks = eva.visual.blocks
    biases = sum(p.numel() for b in blocks for n, p in b.named_parameters() if n.endswith("bias"))
    assert _count(eva, "EVA02-B-16", "bitfit") == biases + HEAD
    assert _count(eva, "EVA02-B-16", "full") == sum(p.numel() for p in blocks.parameters()) + HEAD
    for regime in ("lift_plus", "lora", "adapter", "vpt", "ssf", "sparse"):
        with pytest.raises(ValueError, match=rf"^{regime} cannot act on the blocks of EVA02-B-16: .*EvaBlock .*; "
                                             rf"regimes that train any block's own tensors: bitfit, full, ln_tuning, "
                                             rf"partial"):
            _count(eva, "EVA02-B-16", regime)


@pytest.mark.parametrize("name, size, mean, tokens", [
    ("timm/vit_base_patch16_224.augreg_in21k", 224, (0.5, 0.5, 0.5), 197),
    ("timm/vit_base_patch14_dinov2", 518, (0.485, 0.456, 0.406), 1 + 37 * 37),  # DINOv2: 518 px, ImageNet's
])
def test_plain_timm_vits_by_name(name, size, mean, tokens):
    model = _clip(name)
    tower = model.visual
    assert (input_size(tower), input_mean_std(tower)[0], tower.num_tokens, tower.pool_type, tower.clip) == \
        (size, mean, tokens, "tok", False)
    assert _count(model, name, "lift_plus") == LIFT_PLUS and _count(model, name, "lora") == LORA
    assert _count(model, name, "vpt") == L * 8 * D + HEAD  # 2^floor(log2(100/12)) = 8 prompts per block
    if size == 224:
        x = torch.randn(1, 3, size, size)
        trunk = tower.trunk
        with torch.no_grad():
            expected = trunk.forward_head(trunk.forward_features(x), pre_logits=True)  # timm's classifier input
            torch.testing.assert_close(image_features(tower, x), expected)


def test_timm_names_that_do_not_exist_or_are_not_cached_say_so():
    with pytest.raises(ValueError, match=r"timm/nope_vit: timm has no architecture 'nope_vit'"):
        create_clip("timm/nope_vit", "none")
    with pytest.raises(ValueError, match=r"timm has no weights tag 'vit_base_patch16_224.nope'; tags of "
                                         r"vit_base_patch16_224: .*augreg_in21k"):
        create_clip("timm/vit_base_patch16_224.nope", "none")
    with pytest.raises(WeightsUnavailableError, match=r"timm/vit_base_patch16_224.augreg_in21k .*not available "
                                                      r"offline"):
        create_clip("timm/vit_base_patch16_224.augreg_in21k", "openai")
