"""QuickGELU where the weights were trained with it. No download: open_clip's factory 'downloads' every tag's weights
from one random ViT-B-32 checkpoint, the smallest ViT with an `openai` tag."""
import logging
import warnings

import open_clip
import open_clip.factory
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import load_file
from torch import nn

from bench.models import TINY_MODEL, activation_of, create_clip, image_features, load_backbone, uses_quick_gelu
from bench.models.backbone import BUNDLED, DEMO_MODEL, bundled_weights_path, weights_identity

MODEL = "ViT-B-32"
CLASSES = ["red stripes", "blue checks"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """Random ViT-B-32 weights saved in fp16 (half the bytes), standing in for OpenAI's."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vit_b_32.pt"
    torch.save({k: v.half() for k, v in open_clip.create_model(MODEL).state_dict().items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def build(checkpoint):
    """create_clip with open_clip's download of pretrained weights answered by `checkpoint`."""
    def create(model_name: str, pretrained: str, quick_gelu: bool | None = None) -> nn.Module:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(open_clip.factory, "download_pretrained", lambda cfg, **kwargs: checkpoint)
            return create_clip(model_name, pretrained, quick_gelu)
    return create


@pytest.fixture(scope="module")
def openai(build):
    with warnings.catch_warnings():  # open_clip warns when the tag's activation is not built
        warnings.filterwarnings("error", message="QuickGELU mismatch")
        return build(MODEL, "openai")


def outputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text embeddings of fixed inputs."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 224, 224, generator=generator)
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(open_clip.get_tokenizer(MODEL)(CLASSES))


def block_activations(model: nn.Module) -> set[type]:
    blocks = [*model.visual.transformer.resblocks, *model.transformer.resblocks]
    return {type(block.mlp.gelu) for block in blocks}


def assert_same_model(a: nn.Module, b: nn.Module) -> None:
    for x, y in zip(outputs(a), outputs(b)):
        assert torch.equal(x, y)


@pytest.mark.parametrize("model_name, pretrained, quick_gelu, expected", [
    (MODEL, "openai", None, True),  # the tag's pretrained config says quick_gelu
    ("ViT-B-16", "openai", None, True),
    ("ViT-B-16", "dfn2b", None, True),  # not only OpenAI's tags were trained with QuickGELU
    (MODEL, "laion2b_s34b_b79k", None, False),
    (MODEL, "openai", False, False),  # the user's --no-quick-gelu wins
    (MODEL, "none", None, False),
    (MODEL, "none", True, True),
    (f"{MODEL}-quickgelu", "none", None, True),  # the model config says quick_gelu
    (f"{MODEL}-quickgelu", "openai", False, False),
    (DEMO_MODEL, BUNDLED, None, False),
    (TINY_MODEL, "none", None, False),
])
def test_rule(model_name, pretrained, quick_gelu, expected):
    assert uses_quick_gelu(model_name, pretrained, quick_gelu) is expected


def test_rule_reads_a_file_by_the_model_name_even_if_named_like_a_tag(tmp_path, monkeypatch):
    (tmp_path / "openai").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert not uses_quick_gelu(MODEL, "openai")  # create_clip loads the file, not the tag
    assert uses_quick_gelu(f"{MODEL}-quickgelu", "openai")


def test_openai_tag_is_the_quickgelu_model_bit_for_bit(openai, build, checkpoint):
    assert block_activations(openai) == {QuickGELU}
    assert activation_of(openai) == activation_of(openai.visual) == "quick_gelu"
    reference = build(f"{MODEL}-quickgelu", checkpoint)  # the same weights from a file, under the -quickgelu name
    assert activation_of(reference) == "quick_gelu"
    assert_same_model(openai, reference)


def test_no_quick_gelu_on_the_openai_tag_gives_gelu_and_other_features(openai, build):
    with pytest.warns(UserWarning, match="QuickGELU mismatch"):  # open_clip's own warning, now only when asked
        gelu = build(MODEL, "openai", quick_gelu=False)
    assert block_activations(gelu) == {nn.GELU}
    assert activation_of(gelu) == "gelu"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(image_features(gelu.visual, x), image_features(openai.visual, x), atol=1e-3)


def test_file_is_gelu_under_a_plain_vit_name_with_a_warning_and_when_asked(build, checkpoint, caplog):
    with caplog.at_level(logging.WARNING, logger="bench.models.backbone"):
        plain = build(MODEL, checkpoint)
    assert block_activations(plain) == {nn.GELU} and activation_of(plain) == "gelu"
    assert "--quick-gelu" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench.models.backbone"):
        asked = build(f"{MODEL}-quickgelu", checkpoint, quick_gelu=False)
    assert "--quick-gelu" not in caplog.text  # an explicit choice is not warned about
    assert block_activations(asked) == {nn.GELU}
    assert_same_model(asked, plain)


def test_quick_gelu_on_a_plain_file_gives_quick_gelu(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(create_clip(TINY_MODEL, "none").state_dict(), path)
    assert activation_of(create_clip(TINY_MODEL, str(path))) == "gelu"
    model = create_clip(TINY_MODEL, str(path), quick_gelu=True)
    assert block_activations(model) == {QuickGELU} and activation_of(model) == "quick_gelu"


def test_bundled_demo_keeps_its_gelu_tower():
    model = create_clip(DEMO_MODEL, BUNDLED)
    assert activation_of(model) == "gelu"
    before = open_clip.CLIP(**open_clip.get_model_config(DEMO_MODEL))  # how the demo was built before the rule
    before.load_state_dict({k: v.float() for k, v in load_file(str(bundled_weights_path(DEMO_MODEL))).items()})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(image_features(model.visual, x), image_features(before.eval().visual, x))


def test_activation_of_names_other_activations():
    model = create_clip(TINY_MODEL, "none")
    assert activation_of(model) == "gelu"
    model.visual.transformer.resblocks[0].mlp.gelu = nn.SiLU()
    assert activation_of(model.visual) == "SiLU+gelu"


class KeyRecorder:
    """A cache that computes every time and keeps the keys it was asked for."""

    def __init__(self):
        self.keys = []

    def get_or_compute(self, key, compute):
        self.keys.append(key)
        return compute()


@pytest.mark.parametrize("model_name, pretrained", [(MODEL, "openai"), (MODEL, "none"), (DEMO_MODEL, BUNDLED)])
def test_weights_identity_names_the_activation(model_name, pretrained):
    default = weights_identity(model_name, pretrained, 0)
    assert default == weights_identity(model_name, pretrained, 0, uses_quick_gelu(model_name, pretrained))
    assert weights_identity(model_name, pretrained, 0, True) != weights_identity(model_name, pretrained, 0, False)


def test_load_backbone_threads_quick_gelu_to_the_tower_and_the_text_cache_key():
    cache = KeyRecorder()
    gelu = load_backbone(TINY_MODEL, "none", CLASSES, cache=cache)
    quick = load_backbone(TINY_MODEL, "none", CLASSES, cache=cache, quick_gelu=True)
    assert (activation_of(gelu.visual), activation_of(quick.visual)) == ("gelu", "quick_gelu")
    assert cache.keys[0]["weights"] != cache.keys[1]["weights"]
