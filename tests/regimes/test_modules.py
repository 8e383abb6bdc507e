"""The modules each regime injects, which live in its regime file, and the automatic-size policy."""
import math

import pytest
import torch
from torch.nn.utils import parametrize

from regimes.adapter import BottleneckAdapter
from regimes.base import bottleneck_size
from regimes.lora import LoRA
from regimes.sparse import MaskedUpdate, random_mask
from regimes.ssf import ScaleShift
from regimes.vpt import Prompt


@pytest.mark.parametrize("classes, layers, divisor, size", [
    (100, 12, 2, 4), (1000, 12, 2, 32), (365, 12, 2, 8), (8142, 12, 2, 256),  # AdaptFormer, RECIPES.md
    (1000, 12, 4, 16),  # LoRA on ImageNet-LT
    (10, 12, 2, 1), (100, 1, 1, 64), (100, 12, 1, 8),  # r >= 1; VPT shallow / deep
])
def test_bottleneck_size_formula(classes, layers, divisor, size):
    assert bottleneck_size(classes, layers, divisor) == size


def test_lora_init_scale_and_output():
    torch.manual_seed(0)
    lora = LoRA(64, 4)
    x = torch.randn(5, 64)
    assert torch.equal(lora(x), torch.zeros(5, 64))  # B = 0: a no-op at init
    bound = 1 / math.sqrt(4)  # kaiming_uniform(a=√5) on the D×r matrix, as in LIFT-plus
    assert lora.down.abs().max() <= bound and lora.down.abs().max() > 0.8 * bound
    with torch.no_grad():
        lora.up.normal_()
    torch.testing.assert_close(lora(x), x @ lora.down @ lora.up / 4)


def test_adapter_variants():
    lift = BottleneckAdapter(32, 4, learnable_scale=True)
    assert isinstance(lift.scale, torch.nn.Parameter) and lift.scale.item() == 1.0
    assert isinstance(lift.norm, torch.nn.LayerNorm)
    assert torch.equal(lift(torch.randn(3, 32)), torch.zeros(3, 32))
    assert sum(p.numel() for p in lift.parameters()) == 2 * 32 + (32 * 4 + 4) + (4 * 32 + 32) + 1
    assert not lift.down.bias.any() and lift.down.weight.abs().max() <= 1 / math.sqrt(32)

    original = BottleneckAdapter(32, 4, layer_norm=False, scale=0.1, dropout=0.1)
    assert original.scale == 0.1 and isinstance(original.norm, torch.nn.Identity)
    assert sum(p.numel() for p in original.parameters()) == (32 * 4 + 4) + (4 * 32 + 32)
    with torch.no_grad():
        original.up.weight.normal_()
    x = torch.randn(200, 32)
    original.eval()
    assert torch.equal(original(x), original(x))
    original.train()
    assert not torch.equal(original(x), original(x))  # dropout acts in training


def test_scale_shift_starts_near_identity():
    torch.manual_seed(0)
    ssf = ScaleShift(1000)
    assert ssf.scale.mean().item() == pytest.approx(1.0, abs=0.005) and ssf.scale.std().item() == pytest.approx(
        0.02, rel=0.1)
    assert ssf.shift.mean().item() == pytest.approx(0.0, abs=0.005)


def test_random_mask_size_and_seed():
    a = random_mask(torch.Size([30, 40]), 0.1, seed=0)
    assert a.shape == (30, 40) and int(a.sum()) == 120
    assert torch.equal(a, random_mask(torch.Size([30, 40]), 0.1, seed=0))
    assert not torch.equal(a, random_mask(torch.Size([30, 40]), 0.1, seed=1))
    assert int(random_mask(torch.Size([7]), 0.1, seed=0).sum()) == 0  # int(0.7) entries


def test_masked_update_trains_only_the_masked_entries():
    linear = torch.nn.Linear(8, 6)
    before = linear.weight.detach().clone()
    mask = random_mask(linear.weight.shape, 0.25, seed=0)
    parametrize.register_parametrization(linear, "weight", MaskedUpdate(linear.weight, mask))
    assert torch.equal(linear.weight, before)
    trainable = [p for p in linear.parameters() if p.requires_grad]
    values = linear.parametrizations.weight[0].values
    assert values.numel() == 12
    linear.parametrizations.weight.original.requires_grad_(False)
    with torch.no_grad():
        values.add_(1.0)
    assert torch.equal(linear.weight[~mask], before[~mask])
    assert torch.allclose(linear.weight[mask], before[mask] + 1.0)
    assert any(p is values for p in trainable)


def test_prompt_is_initialised_as_vpt_and_batched_in_the_input_dtype():
    torch.manual_seed(0)
    prompt = Prompt(5, 64)
    torch.manual_seed(0)
    expected = torch.nn.init.normal_(torch.empty(5, 64), std=0.02)  # the same RNG calls as VPT's reference
    assert torch.equal(prompt.prompt.detach(), expected)
    out = prompt(torch.zeros(3, 7, 64, dtype=torch.float64))
    assert out.shape == (3, 5, 64) and out.dtype == torch.float64
    assert torch.equal(out[2], expected.double())
