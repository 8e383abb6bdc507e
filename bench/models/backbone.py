"""CLIP backbones through open_clip: names, tags or local checkpoints; the D-dim CLS feature; text embeddings."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from safetensors.torch import load_file
from torch import nn

from bench.registry import UnknownNameError

from .word_tokenizer import WordTokenizer

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "model_configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"
open_clip.add_model_config(CONFIG_DIR)  # registers ltbench-tiny and ltbench-demo
TINY_MODEL = "ltbench-tiny"
DEMO_MODEL = "ltbench-demo"
RANDOM_WEIGHTS = ("", "none", "random")
BUNDLED = "bundled"
PROMPT = "a photo of a {}."
_ACTIVATION_NAMES = {QuickGELU: "quick_gelu", nn.GELU: "gelu"}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights that cannot be loaded (offline, missing file); the message says how to provide them."""


def image_features(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The D-dim CLS token after `ln_post`, before `proj` (the feature of the references' classifiers)."""
    x = visual._embeds(images)
    x = visual.transformer(x)
    pooled, _ = visual._pool(x)
    return pooled


def input_size(visual: nn.Module) -> int:
    size = visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def input_mean_std(visual: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation open_clip attached to the tower (CLIP's mean/std by default)."""
    return (tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD))


def _check_supported(visual: nn.Module, model_name: str) -> None:
    needed = ("_embeds", "transformer", "_pool", "ln_post", "proj")
    if not all(hasattr(visual, n) for n in needed) or not hasattr(visual.transformer, "resblocks"):
        raise ValueError(f"{model_name}: ltbench needs an open_clip VisionTransformer image tower "
                         f"(ViT models such as ViT-B-16); this model's tower is {type(visual).__name__}")


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


def tokenizer_for(model_name: str):
    """open_clip's tokenizer of the model, or the word tokenizer of a model with a `<name>.vocab` file."""
    vocab = CONFIG_DIR / f"{model_name}.vocab"
    if vocab.is_file():
        context = open_clip.get_model_config(model_name)["text_cfg"]["context_length"]
        return WordTokenizer.from_file(vocab, context)
    return open_clip.get_tokenizer(model_name)


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
    """The MLP activation of a built image tower (or of the CLIP model holding it), for results to record what the
    features went through: "quick_gelu", "gelu" or another activation's class name ('+'-joined if blocks differ)."""
    visual = getattr(model, "visual", model)
    names = {_ACTIVATION_NAMES.get(type(block.mlp.gelu), type(block.mlp.gelu).__name__)
             for block in visual.transformer.resblocks}
    return "+".join(sorted(names))


def _create_model(model_name: str, pretrained: str | None, quick_gelu: bool) -> nn.Module:
    """open_clip.create_model with the activation set either way: force_quick_gelu also silences open_clip's tag
    mismatch warning, the `quick_gelu` keyword overrides a `-quickgelu` config for --no-quick-gelu."""
    return open_clip.create_model(model_name, pretrained=pretrained, force_quick_gelu=quick_gelu,
                                  quick_gelu=quick_gelu)


def create_clip(model_name: str, pretrained: str | None, quick_gelu: bool | None = None) -> nn.Module:
    """An fp32 open_clip CLIP model on CPU in eval mode with the activation of `uses_quick_gelu`; clear errors for
    unknown names and missing weights."""
    if model_name not in open_clip.list_models():
        raise UnknownNameError("model", model_name, open_clip.list_models())
    quick = uses_quick_gelu(model_name, pretrained, quick_gelu)
    tag = (pretrained or "").strip()
    if tag.lower() in RANDOM_WEIGHTS:
        model = _create_model(model_name, None, quick)
    elif tag == BUNDLED:
        model = _load_bundled(model_name, quick)
    elif Path(tag).expanduser().is_file():
        path = str(Path(tag).expanduser())
        if quick_gelu is None and not quick and model_name.startswith("ViT"):
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
    _check_supported(model.visual, model_name)
    return model.float().eval()


@torch.no_grad()
def class_text_embeddings(clip_model: nn.Module, model_name: str, classnames: list[str],
                          device: torch.device | str = "cpu", template: str = PROMPT) -> torch.Tensor:
    """t_k @ W_text_proj for the prompt of every class (K×E, not normalised), in chunks of 1000 prompts."""
    tokenizer = tokenizer_for(model_name)
    prompts = [template.format(name.replace("_", " ")) for name in classnames]
    clip_model = clip_model.to(device)
    chunks = [clip_model.encode_text(tokenizer(prompts[i:i + 1000]).to(device)).float()
              for i in range(0, len(prompts), 1000)]
    return torch.cat(chunks)


@dataclass
class Backbone:
    """What regimes build on: the image tower, and the frozen pieces of the text side they may need."""

    name: str
    visual: nn.Module
    text_embeddings: torch.Tensor  # K×E, t_k @ W_text_proj
    logit_scale: float  # exp(logit_scale) of the CLIP model

    @property
    def feature_dim(self) -> int:
        return self.visual.ln_post.normalized_shape[0]

    def semantic_weights(self) -> torch.Tensor:
        """LIFT+ semantic-aware init: w_k = normalize(normalize(t_k W_text) W_img^T), a K×D matrix."""
        proj = self.visual.proj.detach().float()
        return F.normalize(F.normalize(self.text_embeddings, dim=-1) @ proj.T.to(self.text_embeddings.device),
                           dim=-1)


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
    return f"tag:{tag}"


def cached_text_embeddings(clip_model: nn.Module, model_name: str, pretrained: str | None, classnames: list[str],
                           device: torch.device | str = "cpu", cache=None, seed: int = 0,
                           quick_gelu: bool | None = None) -> torch.Tensor:
    """`class_text_embeddings` on the CPU, read from `cache` (a DiskCache) when it has them; `quick_gelu` is the
    one `clip_model` was created with."""
    def compute() -> torch.Tensor:
        return class_text_embeddings(clip_model, model_name, classnames, device).cpu()

    if cache is None:
        return compute()
    key = {"kind": "text", "model": model_name, "weights": weights_identity(model_name, pretrained, seed, quick_gelu),
           "classnames": hashlib.sha256("\n".join(classnames).encode()).hexdigest(), "template": PROMPT}
    return cache.get_or_compute(key, compute)


def load_backbone(model_name: str, pretrained: str | None, classnames: list[str],
                  device: torch.device | str = "cpu", cache=None, seed: int = 0,
                  quick_gelu: bool | None = None) -> Backbone:
    """The image tower and the class prompts' text embeddings (from `cache`, a DiskCache, when given), with the
    activation of `uses_quick_gelu`."""
    clip_model = create_clip(model_name, pretrained, quick_gelu)
    text = cached_text_embeddings(clip_model, model_name, pretrained, classnames, device, cache, seed, quick_gelu)
    return Backbone(model_name, clip_model.visual.cpu(), text, float(clip_model.logit_scale.exp().item()))
