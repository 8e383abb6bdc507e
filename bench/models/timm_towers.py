"""The reference's ImageNet backbones (LIFT-plus configs/backbone/in21k_*, in1k_*), built with timm as LIFT-plus
does: architecture, weights tag, input size and normalisation of each. They have no text tower."""
from __future__ import annotations

from dataclasses import dataclass

import timm
from huggingface_hub.constants import HF_HUB_CACHE
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .towers import ResNetTower, Tower, ViTTower

HALF = (0.5, 0.5, 0.5)  # LIFT-plus in21k_*.yaml
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # LIFT-plus in1k_*.yaml
REFERENCE_ALIASES = ("openai", "default")  # `--pretrained` values meaning the table's tag; openai: the CLI default


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


def weights_tags(name: str) -> list[str]:
    """The timm weights tags of the model's architecture."""
    architecture = IMAGENET_MODELS[name].architecture
    return [full.split(".", 1)[1] for full in timm.list_pretrained(f"{architecture}.*")]


def resolved_tag(name: str, tag: str) -> str:
    """`tag`, or the reference's tag for the aliases (REFERENCE_ALIASES)."""
    return IMAGENET_MODELS[name].tag if tag in REFERENCE_ALIASES else tag


def build(name: str, tag: str | None = None, file: str | None = None) -> ImageOnlyModel:
    """The model with timm's weights `tag` (from the Hugging Face cache, else the hub), a checkpoint `file`
    (timm's loader: .safetensors, .pth, .bin or .npz), or random weights when neither is given."""
    spec = IMAGENET_MODELS[name]
    if file is not None:
        trunk = timm.create_model(f"{spec.architecture}.{spec.tag}", pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": file})
    else:
        trunk = timm.create_model(f"{spec.architecture}.{tag}" if tag else spec.architecture,
                                  pretrained=tag is not None, num_classes=0)
    kind = ViTTower if isinstance(trunk, VisionTransformer) else ResNetTower
    return ImageOnlyModel(kind(name, trunk, trunk.num_features, spec.size, spec.mean, spec.std, clip=False))


def weights_help(name: str, tag: str) -> str:
    hub = f"timm/{IMAGENET_MODELS[name].architecture}.{tag}"
    return (f"pretrained weights {hub} (timm, for {name}) are not available offline (not in the Hugging Face "
            f"cache {HF_HUB_CACHE}). Provide them by (a) running once with internet access, which caches them, or "
            f"(b) downloading model.safetensors from https://huggingface.co/{hub} and passing --pretrained "
            f"/path/to/model.safetensors, or (c) --pretrained none for random weights.")
