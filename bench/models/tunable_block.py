"""A transformer block with named injection sites, built around an open_clip block's own tensors.

open_clip's `ResidualAttentionBlock` calls `nn.MultiheadAttention`, which gives no access to q and v, and has
no place for a branch parallel to the MLP. `TunableBlock` recomputes the same function from the block's
weights, found by name (`ln_1`, `attn.in_proj_weight`/`in_proj_bias`, `attn.out_proj`, `ln_2`,
`mlp.c_fc`/`mlp.c_proj`), so it keeps working if open_clip swaps the attention class, and the state-dict names
of the frozen tensors do not change.

A regime puts a module at one of a fixed set of sites with `block.attach(site, module)` (it lives in
`block.tuners[site]`); an unknown or already taken site is a ValueError. The sites (`SITES`):

- `qkv`, `attn_out`, `mlp_in`, `mlp_out`: transforms y ↦ module(y) of the output of the fused qkv projection,
  `attn.out_proj`, `mlp.c_fc` and `mlp.c_proj` (a sequential branch: wrap it in `Residual`);
- `q`, `v`: branches reading the attention's input (after `ln_1`), added to q and to v;
- `parallel`: a branch parallel to the MLP reading the residual stream before `ln_2`, added to the output;
- `tokens`: a module returning P×D tokens inserted after CLS (replacing the previous block's tokens).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SITES = ("qkv", "q", "v", "attn_out", "mlp_in", "mlp_out", "parallel", "tokens")


class Sites(nn.ModuleDict):
    """The modules attached to a block, keyed by site; a key that is not a site is a ValueError."""

    def __setitem__(self, site: str, module: nn.Module) -> None:
        if site not in SITES:
            raise ValueError(f"unknown site {site!r}; valid sites: {', '.join(SITES)}")
        super().__setitem__(site, module)


class Residual(nn.Module):
    """x ↦ x + branch(x): a branch made a transform, e.g. a sequential adapter at `mlp_out`."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class TunableBlock(nn.Module):
    def __init__(self, block: nn.Module, batch_first: bool, num_tokens: int):
        super().__init__()
        for name in ("ln_1", "attn", "ls_1", "ln_2", "mlp", "ls_2"):
            setattr(self, name, getattr(block, name))
        self.batch_first = batch_first
        self.num_tokens = num_tokens  # CLS + patches: the tokens that are not prompts
        self.tuners = Sites()

    @property
    def width(self) -> int:
        return self.ln_1.normalized_shape[0]

    def attach(self, site: str, module: nn.Module) -> nn.Module:
        """Put `module` at `site` (one of SITES) and return it; the site must be free."""
        if site not in SITES:
            raise ValueError(f"unknown site {site!r}; valid sites: {', '.join(SITES)}")
        if site in self.tuners:
            raise ValueError(f"site {site!r} is already taken by {type(self.tuners[site]).__name__}; "
                             f"valid sites: {', '.join(SITES)}; free: "
                             f"{', '.join(s for s in SITES if s not in self.tuners) or 'none'}")
        self.tuners[site] = module
        return module

    def _transform(self, site: str, x: torch.Tensor) -> torch.Tensor:
        return self.tuners[site](x) if site in self.tuners else x

    def _attention(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        heads = self.attn.num_heads
        qkv = self._transform("qkv", F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias))
        q, k, v = qkv.chunk(3, dim=-1)
        if "q" in self.tuners:
            q = q + self.tuners["q"](x)
        if "v" in self.tuners:
            v = v + self.tuners["v"](x)
        q, k, v = (t.view(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self._transform("attn_out", self.attn.out_proj(out))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = self._transform("mlp_in", self.mlp.c_fc(x))
        return self._transform("mlp_out", self.mlp.c_proj(self.mlp.gelu(h)))

    def _insert_tokens(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tuners["tokens"](x)
        return torch.cat([x[:, :1], tokens, x[:, -(self.num_tokens - 1):]], dim=1)

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None, attn_mask: torch.Tensor | None = None):
        x = q_x if self.batch_first else q_x.transpose(0, 1)
        if "tokens" in self.tuners:
            x = self._insert_tokens(x)
        x = x + self.ls_1(self._attention(self.ln_1(x), attn_mask))
        out = x + self.ls_2(self._mlp(self.ln_2(x)))
        if "parallel" in self.tuners:
            out = out + self.tuners["parallel"](x)
        return out if self.batch_first else out.transpose(0, 1)


def tunable_blocks(visual: nn.Module) -> list[TunableBlock]:
    """Replace the tower's blocks by TunableBlocks (once) and return them, first to last."""
    transformer = visual.transformer
    blocks = transformer.resblocks
    num_tokens = visual.positional_embedding.shape[0]
    for i, block in enumerate(blocks):
        if not isinstance(block, TunableBlock):
            blocks[i] = TunableBlock(block, getattr(transformer, "batch_first", True), num_tokens)
    return list(blocks)
