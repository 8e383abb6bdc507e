import copy

import numpy as np
import torch

from bench.block_similarity import block_cka
from bench.data import build_dataset
from bench.data.loading import batch_normaliser, to_device
from bench.features import split_loader
from bench.models import TINY_MODEL, LongTailModel, create_clip
from bench.models.towers import tower_blocks
from bench.training.context import JobContext
from tests.conftest import make_job
from tests.test_statistics import _cka


def _cls_outputs(model, block, loader) -> np.ndarray:
    """The CLS token of one block's output over the whole split, in float64: the direct computation."""
    kept = []
    handle = block.register_forward_hook(lambda _m, _i, out: kept.append(out[:, 0].double()))
    with torch.no_grad():
        for images, _ in loader:
            model.features(to_device(images, torch.device("cpu"), batch_normaliser(loader)))
    handle.remove()
    return torch.cat(kept).numpy()


def test_block_cka_is_one_up_to_the_first_changed_block_and_matches_the_direct_computation():
    job = make_job("full", data_overrides={"test_per_class": 4})  # 80 test images
    ctx = JobContext.create(job)
    data = build_dataset(job.dataset_config, "unused")
    torch.manual_seed(0)
    pretrained = LongTailModel(create_clip(TINY_MODEL, "none").visual, torch.nn.Identity()).eval()
    tuned = copy.deepcopy(pretrained)
    blocks = tower_blocks(tuned.visual)
    with torch.no_grad():
        for p in blocks[2].mlp.parameters():
            p.add_(0.5 * torch.randn_like(p))
    result = block_cka(tuned, pretrained, data, "test", ctx)
    assert result["split"] == "test" and result["pooled"] == "CLS token" and len(result["cka"]) == len(blocks) == 4
    np.testing.assert_allclose(result["cka"][:2], 1.0, rtol=1e-9)  # the same blocks on the same inputs
    assert all(v < 0.999 for v in result["cka"][2:])
    loader = split_loader(tuned, data, "test", "test", ctx)
    direct = _cka(_cls_outputs(tuned, blocks[3], loader), _cls_outputs(pretrained, tower_blocks(pretrained.visual)[3],
                                                                       loader))
    np.testing.assert_allclose(result["cka"][3], direct, rtol=1e-9)
    assert not any(block._forward_hooks for block in blocks)  # the hooks are gone
