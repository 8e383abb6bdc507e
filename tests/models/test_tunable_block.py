import open_clip
import pytest
import torch
from torch import nn

from bench.models import TINY_MODEL
from bench.models.tunable_block import SITES, Residual, TunableBlock, tunable_blocks


@pytest.fixture
def tower():
    torch.manual_seed(0)
    return open_clip.create_model(TINY_MODEL, pretrained=None).visual.eval()


def _tokens(tower, batch=2):
    return torch.randn(batch, tower.positional_embedding.shape[0], 128)


class Affine(nn.Module):
    """y ↦ y·s + t per channel, random: folds into the preceding linear layer for an independent check."""

    def __init__(self, dim):
        super().__init__()
        self.s = nn.Parameter(1 + 0.1 * torch.randn(dim))
        self.t = nn.Parameter(0.1 * torch.randn(dim))

    def forward(self, y):
        return y * self.s + self.t


class Tokens(nn.Module):
    def __init__(self, length, dim):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(length, dim))

    def forward(self, x):
        return self.tokens.unsqueeze(0).expand(x.shape[0], -1, -1)


def test_the_sites():
    assert SITES == ("qkv", "q", "v", "attn_out", "mlp_in", "mlp_out", "parallel", "tokens")


@pytest.mark.parametrize("batch_first", [True, False])
def test_same_function_as_the_open_clip_block(tower, batch_first):
    block = tower.transformer.resblocks[0]
    x = _tokens(tower)
    expected = block(x)
    tunable = TunableBlock(block, batch_first, x.shape[1])
    if batch_first:
        torch.testing.assert_close(tunable(x), expected, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(tunable(x.transpose(0, 1)).transpose(0, 1), expected, atol=1e-5, rtol=1e-5)
    names = {n for n, _ in tunable.named_parameters()}
    assert names == {n for n, _ in block.named_parameters()}  # frozen tensors keep their names


def test_replacing_blocks_is_idempotent(tower):
    first = tunable_blocks(tower)
    assert all(isinstance(b, TunableBlock) for b in tower.transformer.resblocks)
    assert tunable_blocks(tower) == first


def test_attach_rejects_unknown_and_taken_sites(tower):
    block = tunable_blocks(tower)[0]
    with pytest.raises(ValueError, match=r"unknown site 'lora_q'; valid sites: qkv, q, v, attn_out, mlp_in, "
                                         r"mlp_out, parallel, tokens"):
        block.attach("lora_q", nn.Identity())
    with pytest.raises(ValueError, match="unknown site 'adapter'; valid sites: qkv, "):
        block.tuners["adapter"] = nn.Identity()  # the dict itself takes no other key: no silent misspelling
    first = nn.Identity()
    assert block.attach("mlp_out", first) is first and block.tuners["mlp_out"] is first
    with pytest.raises(ValueError, match=r"site 'mlp_out' is already taken by Identity; valid sites: qkv, .*; "
                                         r"free: qkv, q, v, attn_out, mlp_in, parallel, tokens"):
        block.attach("mlp_out", nn.Identity())
    assert block.tuners["mlp_out"] is first and list(block.tuners) == ["mlp_out"]


def test_transform_sites_follow_their_projections(tower):
    block = tower.transformer.resblocks[1]
    x = _tokens(tower)
    tunable = TunableBlock(block, True, x.shape[1])
    pairs = {"qkv": (block.attn, "in_proj_weight", "in_proj_bias"),
             "attn_out": (block.attn.out_proj, "weight", "bias"),
             "mlp_in": (block.mlp.c_fc, "weight", "bias"), "mlp_out": (block.mlp.c_proj, "weight", "bias")}
    for site, (module, weight, _) in pairs.items():
        tunable.attach(site, Affine(getattr(module, weight).shape[0]))
    out = tunable(x)
    # independent: the plain block with each affine folded into its projection, W' = s·W, b' = s·b + t
    with torch.no_grad():
        for site, (module, weight, bias) in pairs.items():
            s, t = tunable.tuners[site].s, tunable.tuners[site].t
            getattr(module, weight).mul_(s[:, None])
            getattr(module, bias).mul_(s).add_(t)
    torch.testing.assert_close(out, block(x), atol=1e-4, rtol=1e-4)


def test_q_and_v_branches_add_to_q_and_v_only(tower):
    block = tower.transformer.resblocks[1]
    x = _tokens(tower)
    tunable = TunableBlock(block, True, x.shape[1])
    for site in ("q", "v"):
        tunable.attach(site, nn.Linear(128, 128, bias=False))
    out = tunable(x)
    # independent: the plain block with W_q and W_v moved by the branches' weights, W_k untouched
    with torch.no_grad():
        w = block.attn.in_proj_weight
        w[:128] += tunable.tuners["q"].weight
        w[256:] += tunable.tuners["v"].weight
    torch.testing.assert_close(out, block(x), atol=1e-4, rtol=1e-4)


def test_parallel_reads_the_residual_stream_and_residual_at_mlp_out_is_sequential(tower):
    block = tower.transformer.resblocks[2]
    x = _tokens(tower)
    tunable = TunableBlock(block, True, x.shape[1])
    branch = nn.Sequential(nn.LayerNorm(128), nn.Linear(128, 8), nn.ReLU(), nn.Linear(8, 128))
    tunable.attach("parallel", branch)
    mid = x + block.attention(block.ln_1(x))
    torch.testing.assert_close(tunable(x), mid + block.mlp(block.ln_2(mid)) + branch(mid), atol=1e-5, rtol=1e-5)

    sequential = TunableBlock(block, True, x.shape[1])
    sequential.attach("mlp_out", Residual(branch))
    h = block.mlp(block.ln_2(mid))
    torch.testing.assert_close(sequential(x), mid + h + branch(h), atol=1e-5, rtol=1e-5)


def test_tokens_replace_the_previous_blocks_tokens(tower):
    blocks = tunable_blocks(tower)
    tokens = tower.positional_embedding.shape[0]
    for block in blocks[:2]:
        block.attach("tokens", Tokens(3, 128))
    x = _tokens(tower)
    after_first = blocks[0](x)
    assert after_first.shape[1] == tokens + 3
    after_second = blocks[1](after_first)
    assert after_second.shape[1] == tokens + 3  # deep: the first block's tokens are dropped, new ones added
    assert blocks[2](after_second).shape[1] == tokens + 3  # unprompted blocks carry them on
    # the patches keep their place: block 1 sees CLS, its own tokens, then the patches of block 0's output
    seen = []
    blocks[1].ln_1.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    blocks[1](after_first)
    torch.testing.assert_close(seen[0][:, 1:4], blocks[1].tuners["tokens"].tokens.expand(2, -1, -1))
    torch.testing.assert_close(seen[0][:, 4:], after_first[:, 4:])
    torch.testing.assert_close(seen[0][:, :1], after_first[:, :1])
