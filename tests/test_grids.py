import pytest

from bench.grids import load_grid
from bench.overrides import OverrideError
from bench.plan import Selection, plan
from bench.training import Runtime
from tests.conftest import REPO


def test_shipped_grids_load_and_expand():
    sizes = {p.stem: len(load_grid(p).points()) for p in (REPO / "grids").glob("*.yaml")}
    assert sizes["lift_plus_components"] == 16 and sizes["sparse_fraction"] == 20
    assert sizes["losses"] == 3 * 7 and sizes["coop_context"] == 5 * 3 and sizes["text_tower"] == 2
    selection = Selection(datasets=("synthetic_lt",), seeds=(0, 1), regimes=("lift_plus",),
                          grids=(str(REPO / "grids" / "lift_plus_components.yaml"),))
    planned = plan(selection, Runtime())
    ids = {job.job_id for job in planned.jobs}
    assert len(planned.jobs) == 32  # 16 points × 2 seeds; the default lift_plus job is one of them, kept once
    assert "lift_plus_components" in planned.grids and len(ids) == 32
    assert len(planned.main_ids) == 2 and planned.main_ids <= ids  # the default recipe, both seeds


def test_bad_grid_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regime: lora\naxes:\n  rnak: [1, 2]\n")
    with pytest.raises(OverrideError, match=r"grid bad \(lora\) has no setting 'rnak'"):
        load_grid(bad)
    bad.write_text("axes:\n  lr: [0.1]\n")
    with pytest.raises(OverrideError, match="name the regime"):
        load_grid(bad)
