import pytest

from bench.cli import build_parser, expand_jobs
from bench.grids import load_grid
from bench.overrides import OverrideError
from bench.training import Runtime
from tests.conftest import REPO


def test_shipped_grids_load_and_expand():
    sizes = {p.stem: len(load_grid(p).points()) for p in (REPO / "grids").glob("*.yaml")}
    assert sizes["lift_plus_components"] == 16 and sizes["sparse_fraction"] == 20
    args = build_parser().parse_args(["--datasets", "synthetic_lt", "--seeds", "0", "1", "--grid",
                                      str(REPO / "grids" / "lift_plus_components.yaml"), "--regimes", "lift_plus"])
    jobs, records, main_ids = expand_jobs(args, Runtime())
    assert len(jobs) == 32  # 16 points × 2 seeds; the default lift_plus job is one of them, kept once
    assert "lift_plus_components" in records and len({j.job_id for j in jobs}) == 32
    assert len(main_ids) == 2 and main_ids <= {j.job_id for j in jobs}  # the default recipe, both seeds


def test_bad_grid_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regime: lora\naxes:\n  rnak: [1, 2]\n")
    with pytest.raises(OverrideError, match=r"grid bad \(lora\) has no setting 'rnak'"):
        load_grid(bad)
    bad.write_text("axes:\n  lr: [0.1]\n")
    with pytest.raises(OverrideError, match="name the regime"):
        load_grid(bad)
