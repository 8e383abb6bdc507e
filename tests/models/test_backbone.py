import open_clip
import pytest
import torch
import torch.nn.functional as F

from bench.models import (TINY_MODEL, WeightsUnavailableError, create_clip, image_features, load_backbone)
from bench.models import backbone
from bench.models.backbone import MissingPackageError, hugging_face_parts, tokenizer_for
from bench.models.heads import CosineClassifier, ZeroShotHead, make_classifier
from bench.registry import UnknownNameError

CLASSES = ["red stripes", "blue_checks", "green dots"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clip(TINY_MODEL, "none")


def test_tiny_model_is_a_few_million_parameters_at_32px(tiny):
    n = sum(p.numel() for p in tiny.parameters())
    assert 1e6 < n < 10e6
    assert tiny.visual.image_size in (32, (32, 32))


def test_feature_is_cls_after_ln_post_before_proj(tiny):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feature = image_features(tiny.visual, x)
        tokens = tiny.visual.transformer(tiny.visual._embeds(x))
        by_hand = tiny.visual.ln_post(tokens[:, 0])
        assert feature.shape == (3, 128)
        torch.testing.assert_close(feature, by_hand)
        torch.testing.assert_close(feature @ tiny.visual.proj, tiny.visual(x))  # open_clip's own embedding


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"unknown model 'ViT-Q-99'.*ViT-B-16"):
        create_clip("ViT-Q-99", "none")


def test_unknown_tag_lists_tags():
    with pytest.raises(WeightsUnavailableError, match=r"'nope' is neither a pretrained tag.*openai"):
        create_clip("ViT-B-16", "nope")


def test_offline_weights_error_says_how_to_provide_them():
    with pytest.raises(WeightsUnavailableError) as info:
        create_clip("ViT-B-16", "openai")
    message = str(info.value)
    assert "not available offline" in message and "--pretrained /path/to/checkpoint" in message
    assert "ViT-B-16-quickgelu" in message and "--quick-gelu" in message and "cache" in message


def test_local_checkpoint_file(tmp_path, tiny):
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    loaded = create_clip(TINY_MODEL, str(path))
    for (name, a), (_, b) in zip(tiny.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_corrupt_checkpoint_is_named(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsUnavailableError, match="cannot load checkpoint .*broken.pt"):
        create_clip(TINY_MODEL, str(path))


def test_semantic_init_matches_independent_computation(tiny):
    torch.manual_seed(0)
    backbone = load_backbone(TINY_MODEL, "none", CLASSES)
    # independent: prompt with '_' -> ' ', text tower with projection, normalise, map through W_img^T, normalise
    tokens = open_clip.get_tokenizer(TINY_MODEL)([f"a photo of a {c.replace('_', ' ')}." for c in CLASSES])
    torch.manual_seed(0)
    same = create_clip(TINY_MODEL, "none")  # same seed -> same random weights as `backbone`
    with torch.no_grad():
        text = same.encode_text(tokens)
        expected = F.normalize(F.normalize(text, dim=-1) @ same.visual.proj.T, dim=-1)
    head = make_classifier("cosine", "semantic", backbone, len(CLASSES), 25.0)
    assert isinstance(head, CosineClassifier) and head.weight.shape == (3, 128)
    torch.testing.assert_close(head.weight.detach(), expected)


def test_zero_shot_head_is_clip_logits(tiny):
    backbone = load_backbone(TINY_MODEL, "none", CLASSES)
    head = ZeroShotHead(backbone.visual.proj, backbone.text_embeddings, backbone.logit_scale)
    f = torch.randn(4, 128)
    expected = backbone.logit_scale * F.normalize(f @ backbone.visual.proj, dim=-1) @ F.normalize(
        backbone.text_embeddings, dim=-1).T
    torch.testing.assert_close(head(f), expected)
    assert not list(head.parameters())


@pytest.mark.parametrize("model, parts", [
    ("ViT-B-16", []), ("EVA02-B-16", []), ("ViT-B-16-SigLIP", ["tokenizer"]), ("ViT-SO400M-14-SigLIP2", ["tokenizer"]),
    ("roberta-ViT-B-32", ["text tower", "tokenizer"]), ("xlm-roberta-base-ViT-B-32", ["text tower", "tokenizer"]),
])
def test_the_parts_open_clip_builds_with_transformers(model, parts):
    assert hugging_face_parts(model) == parts


def test_a_missing_package_is_named_with_how_to_install_it(monkeypatch):
    monkeypatch.setattr(backbone, "installed", lambda package: package != "transformers")
    with pytest.raises(MissingPackageError, match=r"^the text tower of roberta-ViT-B-32 needs the transformers "
                                                  r"package, which is not installed: pip install transformers$"):
        create_clip("roberta-ViT-B-32", "none")
    with pytest.raises(MissingPackageError, match=r"^the tokenizer of ViT-B-16-SigLIP needs the transformers "
                                                  r"package, .*: pip install transformers .*"
                                                  r"classifier_init=class_mean"):
        tokenizer_for("ViT-B-16-SigLIP")
    assert tokenizer_for(TINY_MODEL) is not None  # its own word tokenizer
    assert isinstance(MissingPackageError("x"), WeightsUnavailableError)  # the CLI's exit 2 before training
