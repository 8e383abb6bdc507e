"""A transformer block with named injection sites, built around an open_clip or timm block's own tensors.

open_clip's `ResidualAttentionBlock` calls `nn.MultiheadAttention`, which gives no access to q and v, and
neither library's block has a place for a branch parallel to the MLP. `TunableBlock` recomputes the same
function from the block's weights, found by name (`Layout`: open_clip's `ln_1`, `attn.in_proj_weight`/
`in_proj_bias`, `attn.out_proj`, `ln_2`, `mlp.c_fc`/`mlp.c_proj`; timm's `norm1`, `attn.qkv`, `attn.proj`,
`norm2`, `mlp.fc1`/`mlp.fc2`, `ls1`/`ls2`), so it keeps working if open_clip swaps the attention class, and
the state-dict names of the frozen tensors do not change.

A regime puts a module at one of a fixed set of sites with `block.attach(site, module)` (it lives in
`block.tuners[site]`); an unknown or already taken site is a ValueError. The sites (`SITES`):

- `qkv`, `attn_out`, `mlp_in`, `mlp_out`: transforms y ↦ module(y) of the output of the fused qkv projection,
  `attn.out_proj`, `mlp.c_fc` and `mlp.c_proj` (a sequential branch: wrap it in `Residual`);
- `q`, `v`: branches reading the attention's input (after `ln_1`), added to q and to v;
- `parallel`: a branch parallel to the MLP reading the residual stream before `ln_2`, added to the output;
- `tokens`: a module returning P×D tokens inserted after CLS (replacing the previous block's tokens); in a
  causal text block (`bench.models.text_tower`) after SOT.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .sites import Attachable, Sites
from .towers import Tower, is_resnet, tower_blocks

SITES = ("qkv", "q", "v", "attn_out", "mlp_in", "mlp_out", "parallel", "tokens")


@dataclass(frozen=True)
class Layout:
    """The attribute names of one library's pre-norm ViT block: its own, then attn's and mlp's."""

    norm_1: str
    scale_1: str
    norm_2: str
    scale_2: str
    attn_out: str  # on attn: the output projection
    mlp_in: str  # on mlp
    act: str
    mlp_out: str


OPEN_CLIP = Layout("ln_1", "ls_1", "ln_2", "ls_2", "out_proj", "c_fc", "gelu", "c_proj")
TIMM = Layout("norm1", "ls1", "norm2", "ls2", "proj", "fc1", "act", "fc2")


def layout_of(block: nn.Module) -> Layout:
    return TIMM if hasattr(block, "norm1") else OPEN_CLIP


def projections(block: nn.Module) -> dict[str, tuple[nn.Module, str, str]]:
    """(owner, weight name, bias name) of the qkv, attention-out, MLP-in and MLP-out projections of an open_clip
    or timm block, plain or tunable, keyed by the site that follows each."""
    layout, attn, mlp = layout_of(block), block.attn, block.mlp
    qkv = (attn.qkv, "weight", "bias") if layout is TIMM else (attn, "in_proj_weight", "in_proj_bias")
    return {"qkv": qkv, "attn_out": (getattr(attn, layout.attn_out), "weight", "bias"),
            "mlp_in": (getattr(mlp, layout.mlp_in), "weight", "bias"),
            "mlp_out": (getattr(mlp, layout.mlp_out), "weight", "bias")}


def unsupported_block(block: nn.Module) -> str | None:
    """Why TunableBlock cannot recompute `block`, or None: it takes open_clip's block and timm's plain ViT Block
    only (fused qkv, no qk-norm, attention norm or gate, a plain fc1-act-fc2 MLP; not EVA's rope/SwiGLU block)."""
    if isinstance(block, TunableBlock) or layout_of(block) is not TIMM:
        return None
    attn, mlp = block.attn, block.mlp
    extras = [f"attn.{n}" for n in ("q_norm", "k_norm", "norm")
              if not isinstance(getattr(attn, n, nn.Identity()), nn.Identity)]
    extras += ["attn.gate"] if getattr(attn, "gate", None) is not None else []
    extras += ["mlp.norm"] if not isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity) else []
    if extras or not hasattr(attn, "qkv") or not hasattr(mlp, "fc1") or not hasattr(block, "ls1"):
        return (f"ltbench's TunableBlock takes timm's plain ViT Block (fused qkv, fc1-act-fc2 MLP); this "
                f"{type(block).__name__} has {', '.join(extras) or 'another attention or MLP'}")
    return None


class Residual(nn.Module):
    """x ↦ x + branch(x): a branch made a transform, e.g. a sequential adapter at `mlp_out`."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class TunableBlock(Attachable):
    def __init__(self, block: nn.Module, batch_first: bool, num_tokens: int, causal: bool = False,
                 num_prefix: int = 1):
        super().__init__()
        self.layout = layout = layout_of(block)
        if layout is TIMM:
            problem = unsupported_block(block)
            if problem:
                raise ValueError(problem)
        for name in (layout.norm_1, "attn", layout.scale_1, layout.norm_2, "mlp", layout.scale_2):
            setattr(self, name, getattr(block, name))
        self.batch_first = batch_first
        self.num_tokens = num_tokens  # CLS + patches (or the text's context length): the tokens that are not prompts
        self.causal = causal  # a text block: causal attention at whatever length prompts make the sequence
        self.num_prefix = num_prefix  # CLS (and register) tokens, or SOT: prompt tokens go after them
        self.tuners = Sites(SITES)

    def _part(self, role: str) -> nn.Module:
        return getattr(self, getattr(self.layout, role))

    @property
    def width(self) -> int:
        return self._part("norm_1").normalized_shape[0]

    @property
    def mlp_width(self) -> int:
        return getattr(self.mlp, self.layout.mlp_in).out_features

    def _attention(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        heads = self.attn.num_heads
        owner, weight, bias = projections(self)["qkv"]
        qkv = self._transform("qkv", F.linear(x, getattr(owner, weight), getattr(owner, bias)))
        q, k, v = qkv.chunk(3, dim=-1)
        if "q" in self.tuners:
            q = q + self.tuners["q"](x)
        if "v" in self.tuners:
            v = v + self.tuners["v"](x)
        q, k, v = (t.view(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if self.causal else attn_mask,
                                             is_causal=self.causal)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self._transform("attn_out", getattr(self.attn, self.layout.attn_out)(out))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        mlp, layout = self.mlp, self.layout
        h = self._transform("mlp_in", getattr(mlp, layout.mlp_in)(x))
        return self._transform("mlp_out", getattr(mlp, layout.mlp_out)(getattr(mlp, layout.act)(h)))

    def _insert_tokens(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tuners["tokens"](x)
        prefix = self.num_prefix
        return torch.cat([x[:, :prefix], tokens, x[:, x.shape[1] - (self.num_tokens - prefix):]], dim=1)

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None, attn_mask: torch.Tensor | None = None):
        x = q_x if self.batch_first else q_x.transpose(0, 1)
        if "tokens" in self.tuners:
            x = self._insert_tokens(x)
        x = x + self._part("scale_1")(self._attention(self._part("norm_1")(x), attn_mask))
        out = x + self._part("scale_2")(self._mlp(self._part("norm_2")(x)))
        if "parallel" in self.tuners:
            out = out + self.tuners["parallel"](x)
        return out if self.batch_first else out.transpose(0, 1)


def tunable_blocks(visual: nn.Module) -> list[TunableBlock]:
    """Replace the ViT tower's blocks by TunableBlocks (once) and return them, first to last (a TextTower's
    are TunableBlocks from the start)."""
    if is_resnet(visual):
        raise ValueError(f"{visual.name} is a ResNet: it has no transformer blocks to attach modules to")
    if all(isinstance(block, TunableBlock) for block in tower_blocks(visual)):
        return list(tower_blocks(visual))
    if isinstance(visual, Tower):  # timm's ViT
        batch_first, num_tokens, num_prefix = True, visual.num_tokens, visual.num_prefix
    else:
        batch_first = getattr(visual.transformer, "batch_first", True)
        num_tokens, num_prefix = visual.positional_embedding.shape[0], 1
    blocks = tower_blocks(visual)
    for i, block in enumerate(blocks):
        if not isinstance(block, TunableBlock):
            blocks[i] = TunableBlock(block, batch_first, num_tokens, num_prefix=num_prefix)
    return list(blocks)
