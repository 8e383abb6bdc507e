"""The text side: the text encoder as classifier, CoOp, CLIP-Adapter, projection tuning and text-tower PEFT."""
import dataclasses
import types

import open_clip
import pytest
import torch

from bench.models import TINY_MODEL, Backbone, create_clip
from bench.models.backbone import backbone_of, class_text_embeddings
from bench.models.heads import TextClassifier, ZeroShotHead
from bench.registry import get_regime
from regimes.coop import context_positions, context_prompts, context_split
from tests.conftest import tiny_backbone

CLASSES = ["apple", "big_dog", "golden retriever puppy", "cat"]


def _model(regime, backbone, **changes):
    r = get_regime(regime)
    recipe = dataclasses.replace(r.recipe, **changes)
    return r.build(backbone, types.SimpleNamespace(num_classes=len(backbone.text.classnames)), recipe)


@pytest.fixture(scope="module")
def b32():
    """A random-weight ViT-B/32 CLIP: OpenAI's text tower shapes and BPE tokenizer."""
    torch.manual_seed(0)
    return create_clip("ViT-B-32", "none")


def _encode_text_by_hand(clip, tokens, prompts=()):
    """open_clip's text encoder with prompt tokens after SOT before the blocks listed in `prompts` ({block: P×W}),
    each replacing the previous ones, the causal mask grown to the new length and EOT moved back."""
    x = clip.token_embedding(tokens) + clip.positional_embedding
    length, inserted = tokens.shape[1], 0
    for i, block in enumerate(clip.transformer.resblocks):
        if i in prompts:
            p = prompts[i].unsqueeze(0).expand(len(tokens), -1, -1)
            x = torch.cat([x[:, :1], p, x[:, -(length - 1):]], dim=1)
            inserted = p.shape[1]
        n = x.shape[1]
        mask = torch.full((n, n), float("-inf")).triu(1)
        x = block(x, attn_mask=mask)
    x = clip.ln_final(x)
    return x[torch.arange(len(tokens)), tokens.argmax(-1) + inserted] @ clip.text_projection


@pytest.mark.parametrize("model_name", [TINY_MODEL, "ViT-B-32"])
def test_the_text_classifier_with_nothing_attached_is_zero_shot(model_name, b32):
    torch.manual_seed(0)
    clip = b32 if model_name == "ViT-B-32" else create_clip(model_name, "none")
    embeddings = clip.encode_text(open_clip.get_tokenizer("ViT-B-32")(
        [f"a photo of a {c.replace('_', ' ')}." for c in CLASSES])) if model_name == "ViT-B-32" else None
    backbone = backbone_of(clip, model_name, CLASSES, text_tower=True)
    head = TextClassifier(backbone).eval()
    if embeddings is not None:
        torch.testing.assert_close(head.class_embeddings(), embeddings, atol=1e-5, rtol=1e-5)
    zero_shot = ZeroShotHead(backbone.image_projection, class_text_embeddings(clip, model_name, CLASSES), 100.0)
    head.logit_scale = 100.0
    features = torch.randn(5, backbone.feature_dim)
    torch.testing.assert_close(head(features), zero_shot(features), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_coop_context_positions_follow_lift_plus_relative_locations(position, b32):
    """The placeholders' indices equal LIFT-plus's: relative locations taken modulo the prompt's length."""
    backbone = backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True)
    text = backbone.text
    before, after = context_split(4, position)
    text.set_prompts(context_prompts(CLASSES, before, after))
    positions = context_positions(text, before, after)
    relative = {"end": [0, 1, 2, 3], "front": [-5, -4, -3, -2], "middle": [0, 1, -3, -2]}[position]
    eot = text.tokens.argmax(-1, keepdim=True)
    expected = torch.tensor(relative) % (eot - 1) + 1  # LIFT-plus models.py _get_context_indices
    assert torch.equal(positions, expected)
    x = open_clip.get_tokenizer("ViT-B-32")(["X"])[0, 1]
    assert bool((text.tokens.gather(1, positions) == x).all())


def test_coop_trains_only_its_context_and_the_photo_init(b32):
    backbone = backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True)
    model = _model("coop", backbone)
    assert [n for n, _ in model.trainable_parameters()] == ["head.text.tuners.context.context"]
    assert model.text.tuners["context"].context.shape == (4, 512)
    logits = model.train()(torch.randn(2, 3, 224, 224))
    logits.sum().backward()
    assert model.text.tuners["context"].context.grad.abs().sum() > 0

    photo = _model("coop", backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True), context_init="photo")
    words = open_clip.get_tokenizer("ViT-B-32")(["a photo of a"])[0, 1:5]
    torch.testing.assert_close(photo.text.tuners["context"].context.detach(), b32.token_embedding(words).detach())
    with pytest.raises(ValueError, match="context_init=photo starts from the 4 words of 'a photo of a'; set "
                                         "coop.context_length=4"):
        get_regime("coop").check(dataclasses.replace(get_regime("coop").recipe, context_init="photo",
                                                     context_length=8), backbone)


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_coop_context_is_refused_where_the_tokenizer_would_cut_the_class_prompt(position, b32):
    """77 tokens less SOT, EOT and 'golden retriever puppy.' (4): 71 context tokens fit whole, 72 would lose the
    '.' to truncation, and are refused before training, naming the figures."""
    backbone = backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True)
    coop = get_regime("coop")
    fits = dataclasses.replace(coop.recipe, context_length=71, class_position=position)
    coop.check(fits, backbone)
    longest = _model("coop", backbone, context_length=71, class_position=position).text.tokens[CLASSES.index(
        "golden retriever puppy")]
    period, eot = open_clip.get_tokenizer("ViT-B-32")(["."])[0, 1:3].tolist()
    assert longest[-2:].tolist() == [period, eot]  # the whole prompt, its last token in the last place
    cut = open_clip.get_tokenizer("ViT-B-32")(context_prompts(CLASSES, *context_split(72, position)))[2]
    assert period not in cut.tolist()
    with pytest.raises(ValueError, match=r"coop.context_length=72 does not fit: the longest class prompt takes 4 "
                                         r"tokens and ViT-B-32's text context is 77 tokens .* at most 71 context "
                                         r"tokens fit; set coop.context_length=71 or less"):
        coop.check(dataclasses.replace(fits, context_length=72), backbone)


def test_coop_recipe_is_lift_plus_coop_yaml():
    r = get_regime("coop").recipe
    assert (r.classifier, r.epochs, r.batch_size, r.lr, r.augmentation, r.loss, r.context_length,
            r.class_position, r.context_init) == ("text", 50, 32, 0.002, "rrc_flip", "la", 4, "end", "random")


@pytest.mark.parametrize("regime", ["clip_adapter", "proj_tuning"])
def test_clip_adapter_and_projection_tuning_start_as_zero_shot(regime):
    torch.manual_seed(0)
    clip = create_clip(TINY_MODEL, "none")
    backbone = backbone_of(clip, TINY_MODEL, CLASSES, text_tower=True)
    embeddings = class_text_embeddings(clip, TINY_MODEL, CLASSES)
    zero_shot = ZeroShotHead(backbone.image_projection, embeddings, backbone.logit_scale)
    model = _model(regime, backbone).eval()
    features = torch.randn(3, backbone.feature_dim)
    torch.testing.assert_close(model.head(features), zero_shot(features), atol=1e-5, rtol=1e-5)


def test_clip_adapter_is_residual_with_its_own_layer_norm():
    model = _model("clip_adapter", tiny_backbone(CLASSES, text_tower=True))
    for site in ("image", "text"):
        branch = model.head.tuners[site].branch
        assert (branch.down.out_features, branch.scale) == (4, 1.0) and isinstance(branch.norm, torch.nn.LayerNorm)
        assert not branch.up.weight.any() and not branch.up.bias.any()


def test_text_prompts_go_after_sot_and_move_eot(b32):
    """vpt on the text tower against a hand-written causal encoder with the prompts inserted."""
    backbone = backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True)
    torch.manual_seed(1)
    model = _model("vpt", backbone, tower="text", classifier="text", layers=(0, 5))
    prompts = {i: model.text.blocks[i].tuners["tokens"].prompt.detach() for i in (0, 5)}
    assert prompts[0].shape == (2, 512)  # LIFT-plus l.pt_len
    with torch.no_grad():
        expected = _encode_text_by_hand(b32, model.text.tokens, prompts)
        torch.testing.assert_close(model.text.project(model.text()), expected, atol=1e-4, rtol=1e-4)


def test_text_tower_peft_trains_the_text_blocks(b32):
    backbone = backbone_of(b32, "ViT-B-32", CLASSES, text_tower=True)
    model = _model("lora", backbone, tower="text", classifier="text", layers=2)
    names = [n for n, _ in model.trainable_parameters()]
    assert names == [f"head.text.blocks.{i}.tuners.{s}.{p}" for i in (10, 11) for s in ("q", "v")
                     for p in ("down", "up")]
    assert model.text.blocks[11].tuners["q"].down.shape == (512, 4)  # LIFT-plus l.lora_dim


@pytest.mark.parametrize("regime, changes, message", [
    ("lora", {"tower": "text"}, r"lora.tower=text tunes the text tower, which reaches the logits only through the "
                                r"text-encoder classifier: add --set lora.classifier=text"),
    ("coop", {"classifier": "cosine"}, r"coop learns the text encoder's prompts.*leave coop.classifier unset"),
    ("clip_adapter", {"classifier": "linear"}, r"clip_adapter adapts the image and text embeddings, which classify "
                                              r"only with classifier=text; leave clip_adapter.classifier unset"),
    ("proj_tuning", {"classifier": "cosine"}, r"proj_tuning trains the image and text projections.*leave "
                                             r"proj_tuning.classifier unset"),
    ("lift_plus", {"classifier": "text", "classifier_init": "class_mean"},
     r"classifier=text is the text encoder on the class prompts.*leave lift_plus.classifier_init at semantic"),
    ("linear_probe", {"classifier": "text"}, r"linear_probe with classifier=text trains nothing"),
])
def test_text_side_settings_that_cannot_work_are_refused(regime, changes, message):
    r = get_regime(regime)
    recipe = dataclasses.replace(r.recipe, **changes)
    with pytest.raises(ValueError, match=message):
        r.check(recipe, tiny_backbone(CLASSES, text_tower=r.uses_text_tower(recipe)))


def test_text_side_needs_a_clip_text_tower():
    torch.manual_seed(0)
    timm_resnet = create_clip("in1k_rn50", "none")
    with pytest.raises(ValueError, match=r"the text-encoder classifier needs a CLIP text tower, and in1k_rn50"):
        backbone_of(timm_resnet, "in1k_rn50", CLASSES, text_tower=True)
    backbone = Backbone("in1k_rn50", timm_resnet.visual, None, None)
    coop = get_regime("coop")
    with pytest.raises(ValueError, match=r"coop: classifier=text needs a CLIP text tower, and in1k_rn50"):
        coop.check(coop.recipe, backbone)


@pytest.fixture(scope="module")
def b16():
    torch.manual_seed(0)
    return create_clip("ViT-B-16", "none")


# trainable entries on ViT-B/16 (D 768, E 512, text width 512, 12 text blocks), by hand
B16 = {
    ("coop", ()): 4 * 512,
    ("clip_adapter", ()): 2 * (2 * 512 + (512 * 4 + 4) + (4 * 512 + 512)),
    ("proj_tuning", ()): 768 * 512 + 512 * 512,
    ("lora", (("tower", "text"), ("classifier", "text"))): 12 * 2 * 2 * 512 * 4,  # l.lora_dim 4
    ("adaptformer", (("tower", "text"), ("classifier", "text"))): 12 * (2 * 512 + (512 * 4 + 4) + (4 * 512 + 512) + 1),
    ("vpt", (("tower", "text"), ("classifier", "text"))): 12 * 2 * 512,  # l.pt_len 2, deep
    ("bitfit", (("tower", "text"), ("classifier", "text"))): 12 * (2 * 512 + 3 * 512 + 512 + 2048 + 512),
    ("lift_plus", (("classifier", "text"),)): 12 * (2 * 768 + (768 * 4 + 4) + (4 * 768 + 768) + 1),  # K=100: r 4
}


@pytest.mark.parametrize("regime, changes", sorted(B16, key=str))
def test_vit_b16_text_side_trainable_counts(regime, changes, b16):
    backbone = backbone_of(b16, "ViT-B-16", [f"class {i}" for i in range(100)], text_tower=True)
    model = _model(regime, backbone, **dict(changes))
    assert sum(p.numel() for _, p in model.trainable_parameters()) == B16[regime, changes]


def test_rn50_text_side_trainable_counts():
    torch.manual_seed(0)
    rn50 = create_clip("RN50", "none")  # E 1024, text width 512
    names = [f"class {i}" for i in range(10)]
    coop = _model("coop", backbone_of(rn50, "RN50", names, text_tower=True))
    assert sum(p.numel() for _, p in coop.trainable_parameters()) == 4 * 512
    adapter = _model("clip_adapter", backbone_of(rn50, "RN50", names, text_tower=True))
    assert sum(p.numel() for _, p in adapter.trainable_parameters()) == 2 * (2 * 1024 + (1024 * 4 + 4) + (4 * 1024 + 1024))
    with pytest.raises(ValueError, match="proj_tuning: RN50's image tower has no projection"):
        get_regime("proj_tuning").check(get_regime("proj_tuning").recipe,
                                        backbone_of(rn50, "RN50", names, text_tower=True))
