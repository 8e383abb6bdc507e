from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from bench.fields import MAX_SIZE, setting
from bench.models.text_tower import TextTower, class_prompts
from bench.training.recipe import Recipe

from .base import Regime, register_regime

PLACEHOLDER = "X"  # tokenized as a word; its embedding is overwritten by the learned context
PHOTO = "a photo of a"  # CoOp's hand-crafted context, the `photo` init


class LearnedContext(nn.Module):
    """C context vectors shared by every class (CoOp's unified context), N(0, 0.02) or given, written over the
    token embeddings at `positions` (K×C: each prompt's placeholder tokens); site `context` of a TextTower."""

    def __init__(self, positions: torch.Tensor, width: int, init: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("positions", positions)
        self.context = nn.Parameter(torch.empty(positions.shape[1], width))
        if init is None:
            nn.init.normal_(self.context, std=0.02)
        else:
            with torch.no_grad():
                self.context.copy_(init)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(embeddings.shape[0], device=embeddings.device).unsqueeze(1)
        out = embeddings.clone()
        out[rows, self.positions] = self.context.to(embeddings.dtype).expand(embeddings.shape[0], -1, -1)
        return out


def context_split(length: int, position: str) -> tuple[int, int]:
    """(before, after): how many context tokens go before and after the class name (LIFT-plus's templates)."""
    if position == "end":
        return length, 0
    if position == "front":
        return 0, length
    return length // 2, length - length // 2


def context_prompts(classnames: list[str], before: int, after: int) -> list[str]:
    """"X X {} X X." with `before` and `after` placeholders."""
    template = " ".join([PLACEHOLDER] * before + ["{}"] + [PLACEHOLDER] * after) + "."
    return class_prompts(classnames, template)


def context_positions(text: TextTower, before: int, after: int) -> torch.Tensor:
    """K×C token indices of the placeholders: after SOT, and right after each class name's own tokens (counted by
    the tokenizer, so that names of any length and tokenizers without a '.' token place them right)."""
    rows = []
    for name in text.classnames:
        name_tokens = text.token_count(name.replace("_", " "))
        rows.append([1 + i for i in range(before)] + [1 + before + name_tokens + i for i in range(after)])
    positions = torch.tensor(rows, dtype=torch.long).view(len(rows), before + after)
    if len(rows) and int(positions.max()) >= text.num_tokens - 1:
        raise ValueError(f"coop: a class name is too long for the context of {text.num_tokens} tokens with "
                         f"{before + after} context tokens; shorten coop.context_length")
    return positions


def longest_class_prompt(text: TextTower) -> int:
    """Tokens of the longest class name with its '.': what a context prompt holds besides its context tokens
    and the start and end tokens."""
    return max((text.token_count(prompt) for prompt in context_prompts(text.classnames, 0, 0)), default=0)


def check_context_fits(text: TextTower, context_length: int) -> None:
    """Refuse a context that, with the longest class prompt, overflows the text context: the tokenizer would cut
    the class name (or the context) off without a word."""
    longest = longest_class_prompt(text)
    largest = text.num_tokens - 2 - longest
    if context_length > largest:
        fix = (f"set coop.context_length={largest} or less" if largest >= 1 else
               "shorten the longest class name")
        raise ValueError(f"coop.context_length={context_length} does not fit: the longest class prompt takes "
                         f"{longest} tokens and {text.name}'s text context is {text.num_tokens} tokens with its "
                         f"start and end tokens, so at most {max(largest, 0)} context tokens fit; {fix}")


@dataclass(frozen=True)
class CoOpRecipe(Recipe):
    context_length: int = setting(4, low=1, high=MAX_SIZE, help="learnable context tokens, shared by every class")
    class_position: Literal["end", "front", "middle"] = setting(
        "end", help="where the class name sits: after the context (end), before it (front), or in its middle")
    context_init: Literal["random", "photo"] = setting(
        "random", help="random: N(0, 0.02); photo: the token embeddings of 'a photo of a' (context_length 4)")


@register_regime("coop")
class CoOp(Regime):
    """CoOp (Zhou et al.): learnable context tokens in the class prompts of the frozen text encoder, which is the
    classifier; LIFT-plus's coop.yaml recipe (50 epochs, batch 32, lr 0.002, random crop and flip)."""

    summary = "learnable prompt context; the text encoder classifies"
    recipe = replace(CoOpRecipe(), classifier="text", epochs=50, batch_size=32, lr=0.002, augmentation="rrc_flip")
    runs_on_resnet = True  # it tunes the text side only
    text_side = "learns the text encoder's prompts"

    def tunes_image_tower(self, recipe):
        return False

    def check(self, recipe, backbone):
        super().check(recipe, backbone)
        if recipe.context_init == "photo" and recipe.context_length != len(PHOTO.split()):
            raise ValueError(f"coop.context_init=photo starts from the {len(PHOTO.split())} words of '{PHOTO}'; "
                             f"set coop.context_length={len(PHOTO.split())} or coop.context_init=random")
        if backbone.text is not None:
            check_context_fits(backbone.text, recipe.context_length)

    def adapt(self, model, data, recipe):
        text = model.text
        before, after = context_split(recipe.context_length, recipe.class_position)
        text.set_prompts(context_prompts(text.classnames, before, after))
        init = None
        if recipe.context_init == "photo":
            tokens = text.tokenizer([PHOTO]).to(text.tokens.device)
            if text.token_count(PHOTO) != recipe.context_length:
                raise ValueError(f"coop.context_init=photo: this tokenizer splits '{PHOTO}' into "
                                 f"{text.token_count(PHOTO)} tokens, not {recipe.context_length}")
            with torch.no_grad():
                init = text.token_embedding(tokens)[0, 1:1 + recipe.context_length].float()
        positions = context_positions(text, before, after).to(text.tokens.device)
        text.attach("context", LearnedContext(positions, text.width, init))
