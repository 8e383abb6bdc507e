"""Backbones: CLIP models through open_clip (ViTs; ResNets wrapped in a Tower) and the reference's ImageNet models
through timm (bench.models.timm_towers), by name, tag or local checkpoint; the D-dim feature; text embeddings."""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.timm_model import TimmModel
from open_clip.transformer import QuickGELU
from safetensors.torch import load_file
from torch import nn

from bench.messages import first_line
from bench.registry import UnknownNameError

from . import timm_towers
from .text_tower import PROMPT, TextTower, class_prompts
from .timm_towers import IMAGENET_MODELS
from .towers import ResNetTower, Tower, has_text_tower, is_resnet, tower_blocks
from .word_tokenizer import WordTokenizer

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "model_configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
open_clip.add_model_config(CONFIG_DIR)  # registers ltbench-tiny and ltbench-demo
TINY_MODEL = "ltbench-tiny"
DEMO_MODEL = "ltbench-demo"
RANDOM_WEIGHTS = ("", "none", "random")
BUNDLED = "bundled"
_ACTIVATION_NAMES = {QuickGELU: "quick_gelu", nn.GELU: "gelu", nn.ReLU: "relu"}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights that cannot be loaded (offline, missing file); the message says how to provide them."""


class MissingPackageError(WeightsUnavailableError):
    """A part of the model (its tokenizer, its text tower) is built by a package ltbench does not install."""


HF_PACKAGE = "transformers"  # open_clip builds Hugging Face text towers and tokenizers with it


def hugging_face_parts(model_name: str) -> list[str]:
    """The parts of an open_clip model that open_clip builds with `transformers`: a Hugging Face text tower
    (`hf_model_name` in its config: RoBERTa, XLM-R, mT5, NLLB models) and tokenizer (`hf_tokenizer_name`:
    SigLIP, SigLIP 2, those; open_clip also takes a SigLIP name's tokenizer from it)."""
    text = (open_clip.get_model_config(model_name) or {}).get("text_cfg") or {}
    parts = ["text tower"] if text.get("hf_model_name") else []
    if text.get("hf_tokenizer_name") or "siglip" in model_name.lower():
        parts.append("tokenizer")
    return parts


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def require_package(model_name: str, part: str, fix: str = "") -> None:
    """MissingPackageError, naming the package and how to install it, when `part` of the model needs it."""
    if part in hugging_face_parts(model_name) and not installed(HF_PACKAGE):
        raise MissingPackageError(f"the {part} of {model_name} needs the {HF_PACKAGE} package, which is not "
                                  f"installed: pip install {HF_PACKAGE}{fix}")


def image_features(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The feature of the references' classifiers: for open_clip's ViT the D-dim CLS token after `ln_post`,
    before `proj`; for a Tower its own (a CLIP ResNet's attention-pool output, a timm model's pre-logits)."""
    if isinstance(visual, Tower):
        return visual(images)
    x = visual._embeds(images)
    x = visual.transformer(x)
    pooled, _ = visual._pool(x)
    return pooled


def feature_dim(visual: nn.Module) -> int:
    return visual.feature_dim if isinstance(visual, Tower) else visual.ln_post.normalized_shape[0]


def input_size(visual: nn.Module) -> int:
    size = visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def input_mean_std(visual: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation open_clip attached to the tower (CLIP's mean/std by default)."""
    return (tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD))


def _supported_tower(visual: nn.Module, model_name: str) -> nn.Module:
    """open_clip's ViT as it is, its ModifiedResNet wrapped in a ResNetTower, a timm image tower (SigLIP, EVA-02)
    as the Tower of its family when it needs no projection head; other towers are refused."""
    if isinstance(visual, ModifiedResNet):
        return ResNetTower(model_name, visual, visual.output_dim, visual.image_size, *input_mean_std(visual), clip=True)
    if isinstance(visual, TimmModel):
        if any(True for _ in visual.head.parameters()):
            raise ValueError(f"{model_name}: its timm image tower reaches the joint space through a trained head "
                             f"({type(visual.head).__name__}), which ltbench's classifiers do not read; use a model "
                             f"whose tower outputs the joint embedding (SigLIP, EVA-02) or a plain timm/ model")
        size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else int(visual.image_size)
        return timm_towers.tower(model_name, visual.trunk, size, *input_mean_std(visual), clip=True)
    needed = ("_embeds", "transformer", "_pool", "ln_post", "proj")
    if not all(hasattr(visual, n) for n in needed) or not hasattr(visual.transformer, "resblocks"):
        raise ValueError(f"{model_name}: ltbench needs an open_clip VisionTransformer or ModifiedResNet image "
                         f"tower (such as ViT-B-16 or RN50); this model's tower is {type(visual).__name__}")
    return visual


def _weights_help(model_name: str, tag: str) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    source = cfg.get("hf_hub") or cfg.get("url") or "its release location"
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return (f"pretrained weights {model_name}/{tag} are not available offline (not in the Hugging Face cache "
            f"{cache}). Provide them by (a) running once with internet access, which caches them, or "
            f"(b) downloading them from {source} and passing --pretrained /path/to/checkpoint "
            f"(OpenAI weights from a file need QuickGELU: add --quick-gelu, or use --model "
            f"{model_name.removesuffix('-quickgelu')}-quickgelu), "
            f"or (c) --pretrained none for random weights.")


def bundled_weights_path(model_name: str) -> Path:
    return WEIGHTS_DIR / f"{model_name}.safetensors"


def _load_bundled(model_name: str, quick_gelu: bool) -> nn.Module:
    """The checkpoint that ships in the package (fp16 safetensors), as an fp32 model."""
    path = bundled_weights_path(model_name)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{model_name} has no bundled weights at {path}; re-create them with `python -m bench.demo pretrain` "
            f"(about 10 minutes on 2 CPU cores), or use --pretrained none for random weights")
    config = {**open_clip.get_model_config(model_name), "quick_gelu": quick_gelu}
    model = open_clip.CLIP(**config)  # create_model would warn "random weights"
    try:
        state = load_file(str(path))
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except Exception as exc:
        raise WeightsUnavailableError(f"bundled weights {path} cannot be loaded into {model_name} ({exc}); "
                                      f"re-create them with `python -m bench.demo pretrain`") from exc
    return model


NO_PROMPT = "Regimes that encode no prompt need none: --set all.classifier_init=class_mean"


def tokenizer_for(model_name: str):
    """open_clip's tokenizer of the model, or the word tokenizer of a model with a `<name>.vocab` file."""
    vocab = CONFIG_DIR / f"{model_name}.vocab"
    if vocab.is_file():
        context = open_clip.get_model_config(model_name)["text_cfg"]["context_length"]
        return WordTokenizer.from_file(vocab, context)
    require_package(model_name, "tokenizer", f" (then run once with internet access to cache its files). {NO_PROMPT}")
    try:
        return open_clip.get_tokenizer(model_name)
    except Exception as exc:  # SigLIP's and others' Hugging Face tokenizers: a missing package, offline files
        raise WeightsUnavailableError(
            f"the tokenizer of {model_name} cannot be loaded ({type(exc).__name__}: {first_line(str(exc))}); it "
            f"needs its Hugging Face tokenizer (pip install transformers, and its files in the cache: run once with "
            f"internet access). {NO_PROMPT}") from exc


def check_prompt_tokenizer(clip_model: nn.Module, model_name: str) -> None:
    """Load the model's tokenizer (a clear error when its package or files are missing), for runs whose jobs
    encode class prompts; a model without a text tower has none to load."""
    if has_text_tower(clip_model.visual):
        tokenizer_for(model_name)


def _is_tag(pretrained: str | None) -> bool:
    """Whether `pretrained` names open_clip weights by tag: not random, bundled or an existing file (create_clip's
    order)."""
    tag = (pretrained or "").strip()
    return tag.lower() not in RANDOM_WEIGHTS and tag != BUNDLED and not Path(tag).expanduser().is_file()


def uses_quick_gelu(model_name: str, pretrained: str | None, quick_gelu: bool | None = None) -> bool:
    """The activation to build: `quick_gelu` when given (--quick-gelu / --no-quick-gelu), else the one the weights
    were trained with: QuickGELU for a tag whose pretrained config says so (OpenAI's, on which open_clip 3.x only
    warns and builds exact GELU) or for a model config with quick_gelu (the `-quickgelu` names)."""
    if quick_gelu is not None:
        return quick_gelu
    tag = (pretrained or "").strip()
    tag_says = _is_tag(tag) and open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False)
    return bool(tag_says or (open_clip.get_model_config(model_name) or {}).get("quick_gelu", False))


def _activation_name(quick_gelu: bool) -> str:
    return _ACTIVATION_NAMES[QuickGELU if quick_gelu else nn.GELU]


def activation_of(model: nn.Module) -> str:
    """The MLP activation of a built image tower (or of the model holding it), for results to record what the
    features went through: "quick_gelu", "gelu", "relu" (a ResNet's) or another activation's class name
    ('+'-joined if blocks differ)."""
    visual = getattr(model, "visual", model)
    if is_resnet(visual):
        activations = [visual.trunk.act1]
    else:  # open_clip's MLP calls it gelu, timm's act
        activations = [getattr(block.mlp, "gelu", None) or block.mlp.act for block in tower_blocks(visual)]
    return "+".join(sorted({_ACTIVATION_NAMES.get(type(a), type(a).__name__) for a in activations}))


def _create_model(model_name: str, pretrained: str | None, quick_gelu: bool) -> nn.Module:
    """open_clip.create_model with the activation set either way: force_quick_gelu also silences open_clip's tag
    mismatch warning, the `quick_gelu` keyword overrides a `-quickgelu` config for --no-quick-gelu."""
    return open_clip.create_model(model_name, pretrained=pretrained, force_quick_gelu=quick_gelu,
                                  quick_gelu=quick_gelu)


def model_names() -> list[str]:
    """Every model name ltbench accepts: open_clip's and the reference's ImageNet backbones."""
    return open_clip.list_models() + list(IMAGENET_MODELS) + [f"{timm_towers.TIMM_PREFIX}<timm model>"]


def _create_imagenet(model_name: str, pretrained: str | None, quick_gelu: bool | None) -> nn.Module:
    """An ImageNet backbone (timm), its weights chosen as for a CLIP model (`create_clip`)."""
    if quick_gelu:
        raise ValueError(f"--quick-gelu applies to open_clip models; {model_name} is a timm model: drop it")
    tag = (pretrained or "").strip()
    path = Path(tag).expanduser()
    if tag.lower() in RANDOM_WEIGHTS:
        return timm_towers.build(model_name)
    if path.is_file():
        try:
            return timm_towers.build(model_name, file=str(path))
        except Exception as exc:
            raise WeightsUnavailableError(f"cannot load checkpoint {path} into {model_name}: {exc}") from exc
    tags = timm_towers.weights_tags(model_name)
    tag = timm_towers.resolved_tag(model_name, tag)
    if tag not in tags:
        raise WeightsUnavailableError(
            f"{pretrained!r} is neither a timm weights tag of {model_name} nor an existing file; tags: "
            f"{', '.join(tags)} ({', '.join(timm_towers.REFERENCE_ALIASES)}: the reference's, "
            f"{timm_towers.spec_of(model_name).tag}); or give a checkpoint path, or 'none'")
    try:
        return timm_towers.build(model_name, tag=tag)
    except Exception as exc:  # the hub's errors differ offline, without network, with a partial cache
        raise WeightsUnavailableError(timm_towers.weights_help(model_name, tag)) from exc


def create_clip(model_name: str, pretrained: str | None, quick_gelu: bool | None = None) -> nn.Module:
    """An fp32 open_clip CLIP model on CPU in eval mode with the activation of `uses_quick_gelu`, its image tower
    supported by ltbench (`visual`: a ViT as it is, a ResNet as a ResNetTower); for an ImageNet backbone a model
    with only `visual`. Clear errors for unknown names and missing weights."""
    if timm_towers.is_timm_model(model_name):
        return _create_imagenet(model_name, pretrained, quick_gelu).float().eval()
    if model_name not in open_clip.list_models():
        raise UnknownNameError("model", model_name, model_names())
    require_package(model_name, "text tower")
    quick = uses_quick_gelu(model_name, pretrained, quick_gelu)
    tag = (pretrained or "").strip()
    if tag.lower() in RANDOM_WEIGHTS:
        model = _create_model(model_name, None, quick)
    elif tag == BUNDLED:
        model = _load_bundled(model_name, quick)
    elif Path(tag).expanduser().is_file():
        path = str(Path(tag).expanduser())
        if quick_gelu is None and not quick and model_name.startswith(("ViT", "RN")):
            log.warning("loading %s from a file with exact GELU: if these are OpenAI weights (trained with "
                        "QuickGELU) add --quick-gelu, otherwise accuracy silently drops; --no-quick-gelu "
                        "silences this", model_name)
        try:
            model = _create_model(model_name, path, quick)
        except Exception as exc:
            raise WeightsUnavailableError(f"cannot load checkpoint {path} into {model_name}: {exc}") from exc
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if tag not in tags:
            raise WeightsUnavailableError(
                f"{tag!r} is neither a pretrained tag of {model_name} nor an existing file; "
                f"tags of {model_name}: {', '.join(tags) or '(none)'}; or give a checkpoint path, or 'none'")
        try:
            model = _create_model(model_name, tag, quick)
        except RuntimeError as exc:
            raise WeightsUnavailableError(_weights_help(model_name, tag)) from exc
    model.visual = _supported_tower(model.visual, model_name)
    return model.float().eval()


@torch.no_grad()
def class_text_embeddings(clip_model: nn.Module, model_name: str, classnames: list[str],
                          device: torch.device | str = "cpu", template: str = PROMPT) -> torch.Tensor:
    """t_k @ W_text_proj for the prompt of every class (K×E, not normalised), in chunks of 1000 prompts."""
    tokenizer = tokenizer_for(model_name)
    prompts = class_prompts(classnames, template)
    clip_model = clip_model.to(device)
    chunks = [clip_model.encode_text(tokenizer(prompts[i:i + 1000]).to(device)).float()
              for i in range(0, len(prompts), 1000)]
    return torch.cat(chunks)


def needs_text_tower(what: str, model_name: str, fix: str) -> str:
    """The message refusing `what` on a model without a text tower."""
    return f"{what} needs a CLIP text tower, and {model_name} (an ImageNet backbone) has none: {fix}"


@dataclass
class Backbone:
    """What regimes build on: the image tower, the frozen pieces of the text side, and the text tower itself
    for regimes that train through it (`text`, else None)."""

    name: str
    visual: nn.Module
    text_embeddings: torch.Tensor | None  # K×E, t_k @ W_text_proj; None: no text tower (ImageNet backbones)
    logit_scale: float | None  # exp(logit_scale) of the CLIP model
    text: TextTower | None = None

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.visual)

    @property
    def image_projection(self) -> torch.Tensor:
        """D×E: the feature into the text's space; a CLIP ResNet's attention pool already projects (identity)."""
        if isinstance(self.visual, Tower):
            return torch.eye(self.feature_dim)
        return self.visual.proj.detach().float()

    def semantic_weights(self) -> torch.Tensor:
        """LIFT+ semantic-aware init: w_k = normalize(normalize(t_k W_text) W_img^T), a K×D matrix (a CLIP ResNet:
        normalize(t_k W_text))."""
        if self.text_embeddings is None:
            raise ValueError(needs_text_tower("classifier_init=semantic", self.name,
                                              "use classifier_init=class_mean, the reference's init for it"))
        proj = self.image_projection.to(self.text_embeddings.device)
        return F.normalize(F.normalize(self.text_embeddings, dim=-1) @ proj.T, dim=-1)


def weights_identity(model_name: str, pretrained: str | None, seed: int, quick_gelu: bool | None = None) -> str:
    """What names a backbone in cache keys: its weights (`_weights_source`) and its activation, since the same
    weights give other features under the other one."""
    activation = _activation_name(uses_quick_gelu(model_name, pretrained, quick_gelu))
    return f"{_weights_source(model_name, pretrained, seed)}|{activation}"


def _weights_source(model_name: str, pretrained: str | None, seed: int) -> str:
    """The tag, the file (bundled or given) with its size and time, or the seed that drew random weights."""
    tag = (pretrained or "").strip()
    if tag.lower() in RANDOM_WEIGHTS:
        return f"random:seed{seed}"
    path = bundled_weights_path(model_name) if tag == BUNDLED else Path(tag).expanduser()
    if path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"tag:{timm_towers.resolved_tag(model_name, tag) if timm_towers.is_timm_model(model_name) else tag}"


def cached_text_embeddings(clip_model: nn.Module, model_name: str, pretrained: str | None, classnames: list[str],
                           device: torch.device | str = "cpu", cache=None, seed: int = 0,
                           quick_gelu: bool | None = None) -> torch.Tensor | None:
    """`class_text_embeddings` on the CPU, read from `cache` (a DiskCache) when it has them; `quick_gelu` is the
    one `clip_model` was created with. None for a model without a text tower."""
    if not has_text_tower(clip_model.visual):
        return None

    def compute() -> torch.Tensor:
        return class_text_embeddings(clip_model, model_name, classnames, device).cpu()

    if cache is None:
        return compute()
    key = {"kind": "text", "model": model_name, "weights": weights_identity(model_name, pretrained, seed, quick_gelu),
           "classnames": hashlib.sha256("\n".join(classnames).encode()).hexdigest(), "template": PROMPT}
    return cache.get_or_compute(key, compute)


def backbone_of(clip_model: nn.Module, model_name: str, classnames: list[str], text_embeddings=None,
                text_tower: bool = False) -> Backbone:
    """A created model's Backbone; `text_tower` keeps the text tower (refused on a model without one)."""
    text = None
    if text_tower:
        if not has_text_tower(clip_model.visual):
            raise ValueError(needs_text_tower("the text-encoder classifier", model_name,
                                              "use a CLIP model, or a classifier on the image features"))
        text = TextTower(clip_model, model_name, tokenizer_for(model_name), classnames).cpu()
    scale = float(clip_model.logit_scale.exp().item()) if has_text_tower(clip_model.visual) else None
    return Backbone(model_name, clip_model.visual.cpu(), text_embeddings, scale, text)


def load_backbone(model_name: str, pretrained: str | None, classnames: list[str],
                  device: torch.device | str = "cpu", cache=None, seed: int = 0,
                  quick_gelu: bool | None = None, text_tower: bool = False, text_embeddings: bool = True) -> Backbone:
    """The image tower and, with `text_embeddings`, the class prompts' text embeddings (from `cache`, a DiskCache,
    when given), with the activation of `uses_quick_gelu`; the text tower too with `text_tower`."""
    clip_model = create_clip(model_name, pretrained, quick_gelu)
    text = (cached_text_embeddings(clip_model, model_name, pretrained, classnames, device, cache, seed, quick_gelu)
            if text_embeddings else None)
    return backbone_of(clip_model, model_name, classnames, text, text_tower)
