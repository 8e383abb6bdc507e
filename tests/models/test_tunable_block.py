import open_clip
import pytest
import torch

from bench.models import TINY_MODEL
from bench.models.tunable_block import TunableBlock, tunable_blocks
from bench.models.tuners import BottleneckAdapter, LoRA


@pytest.fixture
def tower():
    torch.manual_seed(0)
    return open_clip.create_model(TINY_MODEL, pretrained=None).visual.eval()


def _tokens(tower, batch=2):
    return torch.randn(batch, tower.positional_embedding.shape[0], 128)


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


def test_lora_adds_to_q_and_v_only(tower):
    block = tower.transformer.resblocks[1]
    x = _tokens(tower)
    tunable = TunableBlock(block, True, x.shape[1])
    for name in ("lora_q", "lora_v"):
        tunable.tuners[name] = LoRA(128, 4)
        with torch.no_grad():
            tunable.tuners[name].up.normal_()
    out = tunable(x)
    # independent: the plain block with W_q and W_v moved by (A·B/r)^T, W_k untouched
    with torch.no_grad():
        w = block.attn.in_proj_weight
        w[:128] += (tunable.tuners["lora_q"].down @ tunable.tuners["lora_q"].up / 4).T
        w[256:] += (tunable.tuners["lora_v"].down @ tunable.tuners["lora_v"].up / 4).T
    torch.testing.assert_close(out, block(x), atol=1e-4, rtol=1e-4)


def test_adaptformer_is_parallel_to_the_mlp_and_adapter_sequential(tower):
    block = tower.transformer.resblocks[2]
    x = _tokens(tower)
    tunable = TunableBlock(block, True, x.shape[1])
    branch = BottleneckAdapter(128, 8, learnable_scale=True)
    with torch.no_grad():
        branch.up.weight.normal_()
        branch.scale.fill_(0.5)
    tunable.tuners["adaptformer"] = branch
    mid = x + block.attention(block.ln_1(x))
    torch.testing.assert_close(tunable(x), mid + block.mlp(block.ln_2(mid)) + branch(mid), atol=1e-5, rtol=1e-5)

    del tunable.tuners["adaptformer"]
    tunable.tuners["adapter"] = branch
    h = block.mlp(block.ln_2(mid))
    torch.testing.assert_close(tunable(x), mid + h + branch(h), atol=1e-5, rtol=1e-5)


def test_prompts_replace_the_previous_blocks_prompts(tower):
    blocks = tunable_blocks(tower)
    tokens = tower.positional_embedding.shape[0]
    for block in blocks[:2]:
        block.prompt = torch.nn.Parameter(torch.randn(3, 128))
    x = _tokens(tower)
    after_first = blocks[0](x)
    assert after_first.shape[1] == tokens + 3
    after_second = blocks[1](after_first)
    assert after_second.shape[1] == tokens + 3  # deep: the first block's prompts are dropped, new ones added
    assert blocks[2](after_second).shape[1] == tokens + 3  # unprompted blocks carry them on
