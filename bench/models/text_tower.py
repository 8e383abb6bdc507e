"""The CLIP text tower as a trainable classifier's other half (LIFT-plus's `PEFT_Text`).

It encodes the K class prompts to the EOT token after `ln_final`, before `text_projection`, through
`TunableBlock`s made causal, so that the image side's modules attach to its blocks the same way (`l.*` in
LIFT-plus): prompt tokens go after SOT and the EOT index moves with them. A `context` site takes a module that
rewrites the prompts' token embeddings (CoOp's learnable context).
"""
from __future__ import annotations

import torch
from torch import nn

from .sites import Attachable, Sites
from .tunable_block import TunableBlock

PROMPT = "a photo of a {}."
TEXT_SITES = ("context",)


def class_prompts(classnames: list[str], template: str = PROMPT) -> list[str]:
    """The references' prompt of each class: the template around the name with `_` as a space."""
    return [template.format(name.replace("_", " ")) for name in classnames]


class TextTower(Attachable):
    """Token embedding, positional embedding, causal blocks, `ln_final`, `text_projection` of an open_clip CLIP,
    and the tokenized prompts of the data set's classes (`set_prompts`)."""

    kind = "text"

    def __init__(self, clip_model: nn.Module, name: str, tokenizer, classnames: list[str]):
        super().__init__()
        if getattr(clip_model, "text_pool_type", None) != "argmax" or not hasattr(clip_model, "token_embedding"):
            raise ValueError(f"{name}: ltbench's text-side regimes need an open_clip CLIP text tower that pools the "
                             f"EOT token (text_pool_type 'argmax', as OpenAI's CLIP); this model's does not")
        self.name = name
        self.tokenizer = tokenizer
        self.classnames = list(classnames)
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.num_tokens = self.positional_embedding.shape[0]  # the context length: tokens that are not prompts
        self.blocks = nn.ModuleList(TunableBlock(block, batch_first=True, num_tokens=self.num_tokens, causal=True)
                                    for block in clip_model.transformer.resblocks)
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection  # W×E parameter (OpenAI's layout) or a Linear
        self.tuners = Sites(TEXT_SITES)
        self.register_buffer("tokens", torch.zeros(0, self.num_tokens, dtype=torch.long), persistent=False)
        self.set_prompts(class_prompts(self.classnames))

    @property
    def width(self) -> int:
        return self.ln_final.normalized_shape[0]

    def set_prompts(self, prompts: list[str]) -> None:
        """Tokenize one prompt per class (the context length truncates, as open_clip's tokenizer does)."""
        tokens = self.tokenizer(prompts) if prompts else torch.zeros(0, self.num_tokens, dtype=torch.long)
        self.tokens = tokens.to(self.tokens.device)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The EOT features into the joint space (t·W_text_proj)."""
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(features)
        return features @ self.text_projection.to(features.dtype)

    def token_count(self, text: str) -> int:
        """How many tokens `text` takes between SOT and EOT."""
        return int(self.tokenizer([text])[0].argmax()) - 1

    def forward(self) -> torch.Tensor:
        """K×W: every class prompt's EOT feature after `ln_final` (before the projection)."""
        tokens = self.tokens
        x = self.token_embedding(tokens)
        x = self._transform("context", x)
        x = x + self.positional_embedding.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.ln_final(x)
        offset = x.shape[1] - tokens.shape[1]  # prompt tokens inserted after SOT push EOT back
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1) + offset]
