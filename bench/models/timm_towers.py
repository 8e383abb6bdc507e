"""Image-only backbones through timm: the reference's ImageNet ones (LIFT-plus configs/backbone/in21k_*,
in1k_*: architecture, weights tag, input size and normalisation of each) and any timm ViT, Eva or ResNet named
`timm/<architecture>[.<tag>]` (its own input size and normalisation from timm's pretrained config), e.g.
`timm/vit_base_patch16_224.augreg_in21k` or DINOv2's `timm/vit_base_patch14_dinov2.lvd142m`. They have no text
tower."""
from __future__ import annotations

from dataclasses import dataclass

import timm
from huggingface_hub.constants import HF_HUB_CACHE
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .towers import ResNetTower, Tower, ViTTower

HALF = (0.5, 0.5, 0.5)  # LIFT-plus in21k_*.yaml
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # LIFT-plus in1k_*.yaml
REFERENCE_ALIASES = ("openai", "default")  # `--pretrained` values meaning the table's tag; openai: the CLI default
TIMM_PREFIX = "timm/"
VIT_TRUNKS = (VisionTransformer, Eva)  # the ViT families a ViTTower reads


@dataclass(frozen=True)
class ImageNetModel:
    architecture: str  # timm's name
    tag: str  # the weights LIFT-plus's `pretrained=True` loads: timm's default tag of the architecture (timm 1.0)
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


# ImageNet-21k pre-trained ViTs are the augreg ones fine-tuned on ImageNet-1k; the ResNets timm's own recipes
IMAGENET_MODELS = {
    "in21k_vit_b16": ImageNetModel("vit_base_patch16_224", "augreg2_in21k_ft_in1k", 224, HALF, HALF),
    "in21k_vit_b16_384": ImageNetModel("vit_base_patch16_384", "augreg_in21k_ft_in1k", 384, HALF, HALF),
    "in21k_vit_l16": ImageNetModel("vit_large_patch16_224", "augreg_in21k_ft_in1k", 224, HALF, HALF),
    "in21k_vit_l16_384": ImageNetModel("vit_large_patch16_384", "augreg_in21k_ft_in1k", 384, HALF, HALF),
    "in1k_rn50": ImageNetModel("resnet50", "a1_in1k", 224, IMAGENET_MEAN, IMAGENET_STD),
    "in1k_rn101": ImageNetModel("resnet101", "a1h_in1k", 224, IMAGENET_MEAN, IMAGENET_STD),
    "in1k_rn152": ImageNetModel("resnet152", "a1h_in1k", 224, IMAGENET_MEAN, IMAGENET_STD),
}


class ImageOnlyModel(nn.Module):
    """An ImageNet backbone where a CLIP model would be: the image tower (`visual`) and no text tower."""

    def __init__(self, visual: Tower):
        super().__init__()
        self.visual = visual


def is_timm_model(name: str) -> bool:
    """Whether `name` is built through timm: a reference ImageNet backbone or a `timm/...` name."""
    return name in IMAGENET_MODELS or name.startswith(TIMM_PREFIX)


def spec_of(name: str) -> ImageNetModel:
    """Architecture, weights tag, input size and normalisation of a timm backbone; for `timm/<arch>[.<tag>]` from
    timm's pretrained config of that tag (its default tag when none is named)."""
    if name in IMAGENET_MODELS:
        return IMAGENET_MODELS[name]
    full = name.removeprefix(TIMM_PREFIX)
    architecture = full.split(".", 1)[0]
    if architecture not in timm.list_models():
        raise ValueError(f"{name}: timm has no architecture {architecture!r}; timm/<architecture>[.<tag>] names "
                         f"one of timm.list_models(), e.g. timm/vit_base_patch16_224.augreg_in21k")
    try:
        cfg = timm.models.get_pretrained_cfg(full, allow_unregistered=False)
    except Exception:  # an unknown tag: timm's own message differs between versions
        cfg = None
    if cfg is None:
        raise ValueError(f"{name}: timm has no weights tag {full!r}; tags of {architecture}: "
                         f"{', '.join(t.split('.', 1)[1] for t in timm.list_pretrained(f'{architecture}.*')) or 'none'}")
    tag = cfg.tag or full.split(".", 1)[-1]
    return ImageNetModel(architecture, tag, cfg.input_size[-1], tuple(cfg.mean), tuple(cfg.std))


def weights_tags(name: str) -> list[str]:
    """The timm weights tags of the model's architecture."""
    architecture = spec_of(name).architecture
    return [full.split(".", 1)[1] for full in timm.list_pretrained(f"{architecture}.*")]


def resolved_tag(name: str, tag: str) -> str:
    """`tag`, or the model's own tag for the aliases (REFERENCE_ALIASES): the reference's, or the one a `timm/`
    name gives."""
    return spec_of(name).tag if tag in REFERENCE_ALIASES else tag


def tower(name: str, trunk: nn.Module, size: int, mean, std, clip: bool) -> Tower:
    """A timm trunk (built with num_classes=0) as the Tower of its family: ViT or Eva, or a ResNet with
    layer1..layer4; other architectures are refused, naming what ltbench reads."""
    if isinstance(trunk, VIT_TRUNKS):
        return ViTTower(name, trunk, trunk.num_features, size, mean, std, clip=clip)
    if all(hasattr(trunk, f"layer{i}") for i in range(1, 5)):
        return ResNetTower(name, trunk, trunk.num_features, size, mean, std, clip=clip)
    raise ValueError(f"{name}: ltbench reads timm ViTs (VisionTransformer, Eva) and ResNets (layer1..layer4); "
                     f"this model is a {type(trunk).__name__}")


def build(name: str, tag: str | None = None, file: str | None = None) -> ImageOnlyModel:
    """The model with timm's weights `tag` (from the Hugging Face cache, else the hub), a checkpoint `file`
    (timm's loader: .safetensors, .pth, .bin or .npz), or random weights when neither is given."""
    spec = spec_of(name)
    if file is not None:
        trunk = timm.create_model(f"{spec.architecture}.{spec.tag}", pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": file})
    else:
        trunk = timm.create_model(f"{spec.architecture}.{tag}" if tag else spec.architecture,
                                  pretrained=tag is not None, num_classes=0)
    return ImageOnlyModel(tower(name, trunk, spec.size, spec.mean, spec.std, clip=False))


def weights_help(name: str, tag: str) -> str:
    hub = f"timm/{spec_of(name).architecture}.{tag}"
    return (f"pretrained weights {hub} (timm, for {name}) are not available offline (not in the Hugging Face "
            f"cache {HF_HUB_CACHE}). Provide them by (a) running once with internet access, which caches them, or "
            f"(b) downloading model.safetensors from https://huggingface.co/{hub} and passing --pretrained "
            f"/path/to/model.safetensors, or (c) --pretrained none for random weights.")
