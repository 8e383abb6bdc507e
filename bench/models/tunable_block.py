"""A transformer block with hook points for injected modules, built around an open_clip block's own tensors.

open_clip's `ResidualAttentionBlock` calls `nn.MultiheadAttention`, which gives no access to q and v, and has
no place for a branch parallel to the MLP. `TunableBlock` recomputes the same function from the block's
weights, found by name (`ln_1`, `attn.in_proj_weight`/`in_proj_bias`, `attn.out_proj`, `ln_2`,
`mlp.c_fc`/`mlp.c_proj`), so it keeps working if open_clip swaps the attention class, and the state-dict names
of the frozen tensors do not change. Injected modules live in `tuners`:

- `lora_q`, `lora_v`: added to q and v of the fused qkv projection;
- `ssf_qkv`, `ssf_attn_out`, `ssf_fc`, `ssf_mlp_out`: scale-shift after the four projections;
- `adapter`: sequential, on the MLP output (h + adapter(h));
- `adaptformer`: parallel to the MLP, reading the residual stream before `ln_2`;
- `prompt`: VPT tokens inserted after the CLS token (replacing the previous block's prompts).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TunableBlock(nn.Module):
    def __init__(self, block: nn.Module, batch_first: bool, num_tokens: int):
        super().__init__()
        for name in ("ln_1", "attn", "ls_1", "ln_2", "mlp", "ls_2"):
            setattr(self, name, getattr(block, name))
        self.batch_first = batch_first
        self.num_tokens = num_tokens  # CLS + patches: the tokens that are not prompts
        self.tuners = nn.ModuleDict()
        self.register_parameter("prompt", None)  # VPT tokens, P×D, when a regime adds them

    @property
    def width(self) -> int:
        return self.ln_1.normalized_shape[0]

    def _tuned(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.tuners[name](x) if name in self.tuners else x

    def _attention(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        heads = self.attn.num_heads
        qkv = self._tuned("ssf_qkv", F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias))
        q, k, v = qkv.chunk(3, dim=-1)
        if "lora_q" in self.tuners:
            q = q + self.tuners["lora_q"](x)
        if "lora_v" in self.tuners:
            v = v + self.tuners["lora_v"](x)
        q, k, v = (t.view(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self._tuned("ssf_attn_out", self.attn.out_proj(out))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = self._tuned("ssf_fc", self.mlp.c_fc(x))
        return self._tuned("ssf_mlp_out", self.mlp.c_proj(self.mlp.gelu(h)))

    def _insert_prompt(self, x: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :1], prompt, x[:, -(self.num_tokens - 1):]], dim=1)

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None, attn_mask: torch.Tensor | None = None):
        x = q_x if self.batch_first else q_x.transpose(0, 1)
        if self.prompt is not None:
            x = self._insert_prompt(x)
        x = x + self.ls_1(self._attention(self.ln_1(x), attn_mask))
        h = self._mlp(self.ln_2(x))
        if "adapter" in self.tuners:
            h = h + self.tuners["adapter"](h)
        out = x + self.ls_2(h)
        if "adaptformer" in self.tuners:
            out = out + self.tuners["adaptformer"](x)
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
