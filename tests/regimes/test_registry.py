import pytest

from bench.training.engine import train
from regimes import REGIMES, Regime, get_regime, register_regime
from tests.conftest import make_job


def test_builtin_regimes_and_defaults():
    assert {"zero_shot", "linear_probe", "full"} <= set(REGIMES.names())
    assert get_regime("full").recipe.lr == 5e-4  # the papers' full fine-tuning lr
    probe = get_regime("linear_probe").recipe
    assert (probe.lr, probe.batch_size, probe.momentum, probe.weight_decay) == (0.02, 128, 0.9, 5e-4)
    assert (probe.loss, probe.classifier, probe.classifier_scale, probe.classifier_init) == \
        ("la", "cosine", 25.0, "semantic")
    assert get_regime("zero_shot").recipe.epochs == 0 and not get_regime("zero_shot").trains


@pytest.fixture
def last_block_regime():
    @register_regime("test_last_block")
    class LastBlock(Regime):
        def adapt(self, model, data, recipe):
            model.visual.transformer.resblocks[-1].requires_grad_(True)

    yield LastBlock
    REGIMES._entries.pop("test_last_block")


def test_a_new_regime_plugs_in_without_touching_the_engine(last_block_regime):
    r = train(make_job("test_last_block", epochs=1))
    names = r.params["trainable_tensors"]
    assert all(n.startswith("visual.transformer.resblocks.3.") for n in names[:-1]) and names[-1] == "head.weight"
    assert len(r.history) == 1
