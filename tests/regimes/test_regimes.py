import copy
import dataclasses
import re
import types

import pytest
import torch
import torch.nn.functional as F

from bench.data import build_dataset, dataset_config
from bench.models import Backbone, LinearClassifier, create_clip, image_features, load_backbone
from bench.models.tunable_block import TunableBlock
from bench.overrides import OverrideError, apply_overrides
from bench.training import Runtime
from bench.training.engine import train
from regimes import REGIMES, get_regime
from regimes.base import selected_blocks
from tests.conftest import make_job, tiny_backbone

BLOCK = r"visual\.transformer\.resblocks\.\d+\."
FULL = {BLOCK + r"(ln_1|ln_2)\.(weight|bias)", BLOCK + r"attn\.in_proj_(weight|bias)",
        BLOCK + r"attn\.out_proj\.(weight|bias)", BLOCK + r"mlp\.(c_fc|c_proj)\.(weight|bias)"}
ADAPTFORMER = BLOCK + r"tuners\.parallel\.(norm\.weight|norm\.bias|down\.weight|down\.bias|up\.weight|up\.bias|scale)"
K, D, L, ELIGIBLE = 20, 128, 4, 4 * (4 * 128 ** 2 + 4 * 128 + 2 * 512 * 128 + 512 + 128)  # the tiny model
E, W = 64, 64  # the tiny model's joint embedding and text width


@dataclasses.dataclass(frozen=True)
class Row:
    """What a regime does to the tiny model (D=128, MLP 512, L=4 blocks) on synthetic_lt (K=20)."""
    trainable: frozenset = frozenset()  # patterns over the full names of the trainable tensors, besides head.weight
    count: int | None = None  # their number of entries in all
    sites: tuple = ()  # (site, module class) attached in every block (vpt shallow: the first only), in order
    resolved: dict = dataclasses.field(default_factory=dict)  # the automatic sizes `resolve` fills in
    classifier: tuple = ("head.weight",)  # the head's class weights (none for the text encoder as classifier)


# one row per regime: adding a method is one regime file + one row
ROWS = {
    "zero_shot": Row(classifier=()),
    "coop": Row(frozenset({r"head\.text\.tuners\.context\.context"}), 4 * W, classifier=()),  # 4 context tokens
    "clip_adapter": Row(frozenset({r"head\.tuners\.(image|text)\.branch\.(norm|down|up)\.(weight|bias)"}),
                        2 * (2 * E + (E * 4 + 4) + (4 * E + E)), classifier=()),  # LN, down, up on both sides
    "proj_tuning": Row(frozenset({r"head\.image_projection", r"head\.text\.text_projection"}), D * E + W * E,
                       classifier=()),
    "linear_probe": Row(),
    "full": Row(frozenset(FULL), L * (12 * D ** 2 + 13 * D)),
    "partial": Row(frozenset(FULL), 12 * D ** 2 + 13 * D),  # the last block
    "bitfit": Row(frozenset({BLOCK + r"(ln_1|ln_2)\.bias", BLOCK + r"attn\.in_proj_bias",
                             BLOCK + r"attn\.out_proj\.bias", BLOCK + r"mlp\.(c_fc|c_proj)\.bias"}), L * 11 * D),
    "ln_tuning": Row(frozenset({BLOCK + r"(ln_1|ln_2)\.(weight|bias)"}), L * 4 * D),
    "lora": Row(frozenset({BLOCK + r"tuners\.(q|v)\.(down|up)"}), L * 2 * 2 * D * 1,
                (("q", "LoRA"), ("v", "LoRA")), {"rank": 1}),  # r = 2^max(0, floor(log2(20/16))) = 1
    "adaptformer": Row(frozenset({ADAPTFORMER}), L * (2 * D + (D * 2 + 2) + (2 * D + D) + 1),
                       (("parallel", "BottleneckAdapter"),), {"bottleneck": 2}),  # 2^floor(log2(20/8))
    "lift_plus": Row(frozenset({ADAPTFORMER}), L * (2 * D + (D * 2 + 2) + (2 * D + D) + 1),
                     (("parallel", "BottleneckAdapter"),), {"bottleneck": 2}),
    "adapter": Row(frozenset({BLOCK + r"tuners\.mlp_out\.branch\.(norm|down|up)\.(weight|bias)"}),
                   L * (2 * D + (D * 2 + 2) + (2 * D + D)), (("mlp_out", "Residual"),), {"bottleneck": 2}),
    "vpt": Row(frozenset({BLOCK + r"tuners\.tokens\.prompt"}), L * 4 * D, (("tokens", "Prompt"),),
               {"length": 4}),  # deep: 2^floor(log2(20/4)) tokens per block
    "ssf": Row(frozenset({BLOCK + r"tuners\.(qkv|attn_out|mlp_in|mlp_out)\.(scale|shift)"}),
               L * 2 * (3 * D + D + 512 + D),  # scale and shift after qkv, attn out, fc, mlp out
               (("qkv", "ScaleShift"), ("attn_out", "ScaleShift"), ("mlp_in", "ScaleShift"),
                ("mlp_out", "ScaleShift"))),
    "sparse": Row(frozenset({BLOCK + r"(attn|attn\.out_proj|mlp\.c_fc|mlp\.c_proj)\.parametrizations\."
                             r"(in_proj_weight|in_proj_bias|weight|bias)\.0\.values"}),
                  resolved={"fraction": K * D / ELIGIBLE}),  # K·D entries in all
}
# modules that start as exact no-ops; vpt and ssf (random init in the references) change the features
IDENTITY_AT_INIT = ["linear_probe", "full", "partial", "lora", "adaptformer", "lift_plus", "adapter", "bitfit",
                    "ln_tuning", "sparse"]


@pytest.fixture(scope="module")
def synthetic():
    return build_dataset(dataset_config("synthetic_lt"), "data", False)


def _build(name, data, recipe=None, seed=0):
    torch.manual_seed(seed)
    regime = get_regime(name)
    recipe = recipe or regime.recipe
    backbone = load_backbone("ltbench-tiny", "none", data.classnames, text_tower=regime.uses_text_tower(recipe))
    return backbone, regime.build(backbone, data, recipe)


def test_every_issue_regime_is_registered_and_has_a_row():
    assert {"zero_shot", "linear_probe", "full", "partial", "lora", "adaptformer", "lift_plus", "bitfit",
            "ln_tuning", "vpt", "adapter", "sparse"} <= set(REGIMES.names())
    assert set(ROWS) == set(REGIMES.names())


@pytest.mark.parametrize("name", sorted(ROWS))
def test_exact_trainable_tensors(name, synthetic):
    row = ROWS[name]
    _, model = _build(name, synthetic)
    names = [n for n, _ in model.trainable_parameters()]
    assert [n for n in names if n == "head.weight"] == list(row.classifier)
    body = [n for n in names if n != "head.weight"]
    for n in body:
        assert any(re.fullmatch(p, n) for p in row.trainable), f"{name} trains unexpected {n}"
    for pattern in row.trainable:
        assert any(re.fullmatch(pattern, n) for n in body), f"{name} does not train {pattern}"
    if row.count is not None:
        assert sum(p.numel() for n, p in model.trainable_parameters() if n in body) == row.count


@pytest.mark.parametrize("name", sorted(ROWS))
def test_sites(name, synthetic):
    _, model = _build(name, synthetic)
    blocks = [b for b in model.visual.transformer.resblocks if isinstance(b, TunableBlock)]
    attached = [tuple((site, type(m).__name__) for site, m in b.tuners.items()) for b in blocks]
    assert all(a == ROWS[name].sites for a in attached)
    assert len(blocks) in ((L,) if ROWS[name].sites else (0, L))  # every block is tuned when a site is


@pytest.mark.parametrize("name", sorted(ROWS))
def test_resolve_fills_the_automatic_sizes_and_is_idempotent(name, synthetic):
    regime = get_regime(name)
    backbone = tiny_backbone()
    blocks = list(backbone.visual.transformer.resblocks)
    resolved = regime.resolve(regime.recipe, K, backbone)
    assert list(backbone.visual.transformer.resblocks) == blocks  # the tower is not touched
    expected = dataclasses.replace(regime.recipe, **ROWS[name].resolved)
    assert resolved == expected and type(resolved) is type(regime.recipe)
    assert regime.resolve(resolved, K, backbone) == resolved
    if not ROWS[name].resolved:
        assert resolved is regime.recipe  # the default: unchanged
    for field in ROWS[name].resolved:
        assert getattr(regime.recipe, field) is None  # automatic by default
        explicit = dataclasses.replace(regime.recipe, **{field: 1})
        assert regime.resolve(explicit, K, backbone) is explicit  # a size the user set is kept


@pytest.mark.parametrize("name", [n for n in sorted(ROWS) if ROWS[n].resolved])
def test_build_with_a_resolved_recipe_is_the_same_model(name, synthetic):
    regime = get_regime(name)
    _, auto = _build(name, synthetic)
    backbone = load_backbone("ltbench-tiny", "none", synthetic.classnames)
    resolved = regime.resolve(regime.recipe, synthetic.num_classes, backbone)
    _, fixed = _build(name, synthetic, resolved)
    a, b = auto.state_dict(), fixed.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name, classes, depth, size", [
    ("lora", 1000, 4, {"rank": 32}),  # 2^floor(log2(1000/16))
    ("lora", 3, 4, {"rank": 1}),  # never below 1
    ("adapter", 1000, 4, {"bottleneck": 64}),  # 2^floor(log2(1000/8))
    ("adaptformer", 100, 2, {"bottleneck": 16}),  # 2^floor(log2(100/4)) on a 2-block tower
    ("vpt", 1000, 4, {"length": 128}),  # 2^floor(log2(1000/4))
])
def test_resolve_follows_classes_and_depth(name, classes, depth, size):
    backbone = tiny_backbone()
    backbone.visual.transformer.resblocks = backbone.visual.transformer.resblocks[:depth]
    regime = get_regime(name)
    assert regime.resolve(regime.recipe, classes, backbone) == dataclasses.replace(regime.recipe, **size)


def test_resolve_of_the_variants():
    backbone = tiny_backbone()
    adaptformer, vpt, sparse = get_regime("adaptformer"), get_regime("vpt"), get_regime("sparse")
    original = dataclasses.replace(adaptformer.recipe, variant="original")
    assert adaptformer.resolve(original, K, backbone).bottleneck == 64
    shallow = dataclasses.replace(vpt.recipe, depth="shallow")
    assert vpt.resolve(shallow, K, backbone).length == 16  # 2^floor(log2(20/1))
    mlp = dataclasses.replace(sparse.recipe, location="mlp")
    assert sparse.resolve(mlp, K, backbone).fraction == K * D / (L * (2 * 512 * 128 + 512 + 128))
    assert sparse.resolve(sparse.recipe, 10 ** 6, backbone).fraction == 1.0  # more than every entry: all


def test_partial_trains_the_last_k_blocks(synthetic):
    recipe = dataclasses.replace(get_regime("partial").recipe, blocks=2)
    _, model = _build("partial", synthetic, recipe)
    blocks = {int(n.split(".")[3]) for n, _ in model.trainable_parameters() if n.startswith("visual.")}
    assert blocks == {2, 3}
    for k, expected in ((0, set()), (4, {0, 1, 2, 3})):
        _, model = _build("partial", synthetic, dataclasses.replace(recipe, blocks=k))
        assert {int(n.split(".")[3]) for n, _ in model.trainable_parameters() if n.startswith("visual.")} == expected
    with pytest.raises(ValueError, match="partial.blocks=5 but the model has 4 blocks"):
        _build("partial", synthetic, dataclasses.replace(recipe, blocks=5))


def test_vpt_shallow_and_explicit_length(synthetic):
    recipe = dataclasses.replace(get_regime("vpt").recipe, depth="shallow")
    _, model = _build("vpt", synthetic, recipe)
    prompts = [(n, p.shape) for n, p in model.trainable_parameters() if n.endswith("prompt")]
    assert prompts == [("visual.transformer.resblocks.0.tuners.tokens.prompt", (16, 128))]  # 2^floor(log2(20/1))
    assert all(not b.tuners for b in model.visual.transformer.resblocks[1:])
    _, model = _build("vpt", synthetic, dataclasses.replace(recipe, length=3))
    assert model.visual.transformer.resblocks[0].tuners["tokens"].prompt.shape == (3, 128)


def test_sparse_fraction_and_mask_seed(synthetic):
    _, model = _build("sparse", synthetic)
    body = sum(p.numel() for n, p in model.trainable_parameters() if n.startswith("visual."))
    assert 20 * 128 - 8 * 4 <= body <= 20 * 128  # K·D by default, less the per-tensor rounding down
    recipe = dataclasses.replace(get_regime("sparse").recipe, fraction=0.01, location="mlp")
    _, model = _build("sparse", synthetic, recipe)
    names = [n for n, _ in model.trainable_parameters() if n.startswith("visual.")]
    assert all(".mlp." in n for n in names)
    c_fc = model.visual.transformer.resblocks[0].mlp.c_fc.parametrizations.weight[0]
    assert int(c_fc.mask.sum()) == int(512 * 128 * 0.01)
    _, other = _build("sparse", synthetic, dataclasses.replace(recipe, mask_seed=1))
    assert not torch.equal(c_fc.mask, other.visual.transformer.resblocks[0].mlp.c_fc.parametrizations.weight[0].mask)
    with pytest.raises(ValueError, match=r"fraction must be > 0 and <= 1, got 1.5"):
        dataclasses.replace(recipe, fraction=1.5)


def test_adaptformer_original_variant(synthetic):
    recipe = dataclasses.replace(get_regime("adaptformer").recipe, variant="original")
    _, model = _build("adaptformer", synthetic, recipe)
    branch = model.visual.transformer.resblocks[0].tuners["parallel"]
    assert branch.down.out_features == 64 and branch.scale == 0.1 and branch.dropout.p == 0.1
    assert isinstance(branch.norm, torch.nn.Identity)
    model.train()
    assert branch.training and not model.visual.transformer.resblocks[0].ln_1.training


@pytest.mark.parametrize("name", IDENTITY_AT_INIT)
def test_injected_modules_do_not_change_the_features_at_step_0(name, synthetic):
    images = torch.randn(4, 3, 32, 32)
    backbone, model = _build(name, synthetic)
    torch.manual_seed(0)
    plain = create_clip("ltbench-tiny", "none").visual  # the same random weights, untouched
    with torch.no_grad():
        torch.testing.assert_close(model.eval().features(images), image_features(plain, images),
                                   atol=1e-5, rtol=1e-5)


def test_semantic_init_and_reference_random_init(synthetic):
    backbone, model = _build("lift_plus", synthetic)
    text = F.normalize(backbone.text_embeddings, dim=-1)
    expected = F.normalize(text @ backbone.visual.proj.detach().T, dim=-1)
    torch.testing.assert_close(model.head.weight.detach(), expected)
    recipe = dataclasses.replace(get_regime("linear_probe").recipe, classifier="linear", classifier_init="random")
    _, probe = _build("linear_probe", synthetic, recipe)
    assert isinstance(probe.head, LinearClassifier) and not probe.head.bias.any()
    torch.testing.assert_close(probe.head.weight.norm(dim=1), torch.ones(20))  # unit rows, as the references


def test_lift_plus_defaults_and_one_component_ablations():
    r = get_regime("lift_plus").recipe
    assert (r.variant, r.bottleneck, r.classifier, r.classifier_scale, r.classifier_init, r.loss, r.la_tau,
            r.augmentation, r.tte, r.lr, r.batch_size, r.epochs) == \
        ("lift", None, "cosine", 25.0, "semantic", "la", 1.0, "minimalist", True, 0.02, 128, None)
    for field, value, parsed in [("classifier_init", "random", "random"), ("loss", "ce", "ce"),
                                 ("augmentation", "rrc_flip", "rrc_flip"), ("tte", "off", False),
                                 ("classifier", "linear", "linear"), ("bottleneck", "8", 8), ("epochs", "10", 10)]:
        changed = apply_overrides(r, {field: value}, "lift_plus")
        assert getattr(changed, field) == parsed and type(changed) is type(r)
        assert [f for f in dataclasses.fields(r) if getattr(r, f.name) != getattr(changed, f.name)] == \
            [f for f in dataclasses.fields(r) if f.name == field]
    with pytest.raises(OverrideError, match="lora has no setting 'bottleneck'; settings: .*rank"):
        apply_overrides(get_regime("lora").recipe, {"bottleneck": "4"}, "lora")


@pytest.mark.parametrize("name", [n for n in sorted(ROWS) if n != "zero_shot"])
def test_each_regime_trains_and_its_loss_falls(name):
    small = {"max_per_class": 60, "imbalance_ratio": 15, "test_per_class": 5}  # ~420 images: a loss to watch fall
    r = train(make_job(name, epochs=3, runtime=Runtime(device="cpu", train_eval=False), data_overrides=small))
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert r.metrics["test"]["tte"] == (name == "lift_plus")
    assert r.resolved == ROWS[name].resolved  # the result records the sizes used


@pytest.fixture(scope="module")
def vit_b16_tower():
    """A randomly initialised ViT-B/16 image tower: the counts need its shapes, not its weights."""
    torch.manual_seed(0)
    return create_clip("ViT-B-16", "none").visual


def _vit_b16(regime, tower, num_classes, **changes):
    backbone = Backbone("ViT-B-16", copy.deepcopy(tower), torch.randn(num_classes, 512), 100.0)
    r = get_regime(regime)
    model = r.build(backbone, types.SimpleNamespace(num_classes=num_classes),
                    dataclasses.replace(r.recipe, **changes))
    return model, sum(p.numel() for _, p in model.trainable_parameters())


def test_vit_b16_trainable_counts(vit_b16_tower):
    assert _vit_b16("lift_plus", vit_b16_tower, 100)[1] == 178_236  # CIFAR-100-LT, r = 4
    assert _vit_b16("lift_plus", vit_b16_tower, 1000)[1] == 1_385_868  # ImageNet-LT, r = 32
    assert _vit_b16("adaptformer", vit_b16_tower, 365)[1] == 175_212 + 280_320  # Places-LT, r = 8
    assert _vit_b16("lora", vit_b16_tower, 1000)[1] - 768_000 == 589_824  # r = 16
    model, count = _vit_b16("full", vit_b16_tower, 100)
    names = [n for n, _ in model.trainable_parameters()]
    every_block_tensor = [f"visual.{n}" for n, _ in vit_b16_tower.named_parameters() if ".resblocks." in n]
    assert names == every_block_tensor + ["head.weight"]
    assert count == sum(p.numel() for n, p in vit_b16_tower.named_parameters() if ".resblocks." in n) + 76_800


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_block_attends_through_fused_attention_in_forward_and_backward(name, synthetic, monkeypatch):
    """Each block's attention goes through torch's fused kernels (flash / memory-efficient on GPU): SDPA when
    it needs gradients, whether open_clip's block or our TunableBlock computes it, or nn.MultiheadAttention's
    native fast path for a frozen block that needs none."""
    _, model = _build(name, synthetic)
    calls = []
    for owner, attr in ((F, "scaled_dot_product_attention"), (torch, "_native_multi_head_attention")):
        fused = getattr(owner, attr)
        monkeypatch.setattr(owner, attr, lambda *a, _f=fused, **k: calls.append(1) or _f(*a, **k))
    model.train()
    logits = model(torch.randn(2, 3, 32, 32))
    if logits.requires_grad:  # zero-shot trains nothing
        logits.sum().backward()
    assert len(calls) == len(model.visual.transformer.resblocks) + (len(model.text.blocks) if model.text else 0)


# layer choice: (regime, layers) -> (the tuned blocks, trainable entries besides the head, resolved sizes), by hand
# on the tiny model; automatic sizes count the chosen blocks only (LIFT-plus `len(layers)`)
BLOCK_ENTRIES = 4 * D ** 2 + 4 * D + 2 * 512 * D + 512 + D  # attention and MLP weights and biases of one block
LAYERS = {
    ("full", 2): ({2, 3}, 2 * (12 * D ** 2 + 13 * D), {}),
    ("bitfit", (0, 3)): ({0, 3}, 2 * 11 * D, {}),
    ("ln_tuning", 1): ({3}, 4 * D, {}),
    ("ssf", (1,)): ({1}, 2 * (3 * D + D + 512 + D), {}),
    ("lora", 1): ({3}, 2 * 2 * D * 4, {"rank": 4}),  # 2^floor(log2(20/(4·1)))
    ("adapter", 2): ({2, 3}, 2 * (2 * D + (D * 4 + 4) + (4 * D + D)), {"bottleneck": 4}),  # 2^floor(log2(20/4))
    ("adaptformer", (2, 0)): ({0, 2}, 2 * (2 * D + (D * 4 + 4) + (4 * D + D) + 1), {"bottleneck": 4}),
    ("lift_plus", 1): ({3}, 2 * D + (D * 8 + 8) + (8 * D + D) + 1, {"bottleneck": 8}),  # 2^floor(log2(20/2))
    ("vpt", 2): ({2, 3}, 2 * 8 * D, {"length": 8}),  # 2^floor(log2(20/2)) tokens per prompted block
    # K·D of one block's 197,760 entries, each tensor rounded down: 636+4+212+1+848+6+848+1
    ("sparse", 1): ({3}, 2556, {"fraction": K * D / BLOCK_ENTRIES}),
    ("lora", 0): (set(), 0, {}),  # no block: the classifier only, nothing to size
}


def _tuned(model) -> set:
    return {int(n.split(".")[3]) for n, _ in model.trainable_parameters() if n.startswith("visual.")}


@pytest.mark.parametrize("name, layers", sorted(LAYERS, key=str))
def test_layers_choose_the_tuned_blocks_and_the_automatic_sizes(name, layers, synthetic):
    blocks, count, resolved = LAYERS[name, layers]
    regime = get_regime(name)
    recipe = dataclasses.replace(regime.recipe, layers=layers)
    _, model = _build(name, synthetic, recipe)
    assert _tuned(model) == blocks
    assert sum(p.numel() for n, p in model.trainable_parameters() if n.startswith("visual.")) == count
    tuned_sites = {i for i, b in enumerate(model.visual.transformer.resblocks) if getattr(b, "tuners", None)}
    assert tuned_sites == (blocks if ROWS[name].sites else set())
    assert regime.resolve(recipe, K, tiny_backbone()) == dataclasses.replace(recipe, **resolved)


def test_layers_from_the_command_line_and_the_default():
    lora = get_regime("lora").recipe
    assert lora.layers is None  # all blocks: the rows above
    for text, value in (("3", 3), ("0,3", (0, 3)), ("[0, 3]", (0, 3)), ("[3]", (3,)), ("none", None)):
        assert apply_overrides(lora, {"layers": text}, "lora").layers == value
    with pytest.raises(OverrideError, match=r"lora.layers: cannot read 'a,b' as int or a list of int"):
        apply_overrides(lora, {"layers": "a,b"}, "lora")
    with pytest.raises(OverrideError, match=r"--set lora.layers must be >= 0 and <= 65536, got -1"):
        apply_overrides(lora, {"layers": "-1"}, "lora")
    assert dataclasses.replace(lora, layers=[1, 2]).layers == (1, 2)  # a list is kept as a (hashable) tuple
    assert get_regime("partial").recipe == apply_overrides(get_regime("partial").recipe, {"blocks": "1"}, "partial")
    assert not hasattr(get_regime("partial").recipe, "layers")  # partial keeps `blocks`, its own (last k) choice


@pytest.mark.parametrize("layers, blocks", [(None, [0, 1, 2, 3]), (0, []), (1, [3]), (4, [0, 1, 2, 3]),
                                            ((3, 0), [0, 3]), ((), [])])
def test_selected_blocks_follows_lift_plus(layers, blocks):
    assert selected_blocks(layers, 4) == blocks


@pytest.mark.parametrize("name, layers, message", [
    ("lora", 5, r"lora.layers=5 but the model has 4 blocks; use --set lora.layers=0..4"),
    ("bitfit", (0, 4), r"bitfit.layers lists block 4 but the model has blocks 0..3"),
    ("sparse", (-1,), r"sparse.layers lists block -1 but the model has blocks 0..3"),
    ("adapter", (1, 1), r"adapter.layers lists a block twice \(1, 1\)"),
])
def test_bad_layers_are_refused_before_training(name, layers, message):
    regime = get_regime(name)
    with pytest.raises(ValueError, match=message):
        regime.check(dataclasses.replace(regime.recipe, layers=layers), tiny_backbone())


def test_vpt_shallow_takes_no_layers():
    vpt = get_regime("vpt")
    with pytest.raises(ValueError, match="vpt.depth=shallow prompts block 0 only but vpt.layers=2"):
        vpt.check(dataclasses.replace(vpt.recipe, depth="shallow", layers=2), tiny_backbone())
