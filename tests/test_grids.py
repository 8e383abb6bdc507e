import pytest

from bench.grids import load_grid, load_grids
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


def _write(tmp_path, text: str, name: str = "g") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("regime: lora\naxes:\n  rank: [2]\n  lr: [0.1]\n  rank: [4]\n", r"key 'rank' is given twice \(lines 3 and 5\)"),
    ("regime: lora\nregime: vpt\naxes:\n  lr: [0.1]\n", r"key 'regime' is given twice \(lines 1 and 2\)"),
    ('{"regime": "lora", "axes": {"rank": [2], "rank": [4]}}', r"key 'rank' is given twice \(lines 1 and 1\)"),
    ("regime: lora\naxes:\n  rank: []\n", r"axis 'rank' has no values"),
    ("regime: lora\naxes:\n  rank:\n", r"axis 'rank' has no values"),
    ("axes:\n  regime: []\n  lr: [0.1]\n", r"axis 'regime' has no values"),
    ("regime: lora\naxes:\n  lr: [0.1, 0.2, 0.1]\n", r"axis 'lr' lists 0.1 twice"),
    ("regime: lora\naxes:\n  tte: [true, false, true]\n", r"axis 'tte' lists true twice"),
    ("regime: lora\naxis:\n  lr: [0.1]\n", r"expected a mapping with 'axes"),
    ("regime: lora\nmetrc: few\naxes:\n  lr: [0.1]\n",
     r"unknown key 'metrc'; a grid file has name, metric, regime, axes"),
    ("regime: lora\naxes:\n  regime: [vpt]\n", r"names the regime twice"),
    ("regime: [lora, vpt]\naxes:\n  lr: [0.1]\n", r"'regime:' takes one name; for several use a 'regime' axis"),
    ("name: ../up\nregime: lora\naxes:\n  lr: [0.1]\n", r"name '\.\./up' must be a plain file name"),
    ("name: 7\nregime: lora\naxes:\n  lr: [0.1]\n", r"name 7 must be a plain file name"),
    ("regime: lora\naxes:\n  rank: [1.0e+30]\n", r"rank: cannot read '1e\+30' as int \(a whole number"),
    ("regime: lora\naxes:\n  rank: [1000000000000]\n", r"rank must be >= 1 and <= 65536, got 1000000000000"),
    ("regime: lora\naxes:\n  rank: [2\n", r"cannot read it \(while parsing .*line 3"),
])
def test_grid_file_mistakes_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(OverrideError, match=rf"^grid (file {path}: |g \(lora\)\.).*{message}") as info:
        load_grid(path)
    assert "\n" not in str(info.value)


def test_an_axis_of_one_value_and_null_in_a_list_are_kept(tmp_path):
    grid = load_grid(_write(tmp_path, "regime: lora\naxes:\n  tte: true\n  rank: [null, 4]\n"))
    assert grid.axes == {"regime": ["lora"], "tte": [True], "rank": [None, 4]} and len(grid.points()) == 2


def test_grid_names_are_unique_in_a_run(tmp_path):
    first = _write(tmp_path, "name: same\nregime: lora\naxes:\n  rank: [2]\n", "a")
    second = _write(tmp_path, "name: same\nregime: vpt\naxes:\n  length: [2]\n", "b")
    with pytest.raises(OverrideError, match=rf"grid files {first} and {second} are both named 'same'"):
        load_grids([first, second])
    with pytest.raises(OverrideError, match=rf"--grid {first} is given twice"):
        load_grids([first, first])
    other = _write(tmp_path, "regime: vpt\naxes:\n  length: [2]\n", "c")  # named after its file
    assert [grid.name for grid in load_grids([first, other])] == ["same", "c"]
    with pytest.raises(OverrideError, match="both named 'same'"):
        plan(Selection(datasets=("synthetic_lt",), grids=(first, second)), Runtime())


@pytest.mark.parametrize("axis, message", [
    ("demo_lt.nope: [1]", r"grid g \(demo_lt\) has no setting 'nope'; settings: .*imbalance_ratio"),
    ("nope_lt.imbalance_ratio: [1]", r"'nope_lt' is not a data set \(a recipe axis is the field alone"),
    ("demo_lt.imbalance_ratio: [0.5]", r"grid g \(demo_lt\)\.imbalance_ratio must be >= 1, got 0\.5"),
    ("cifar100_lt_ir50.imbalance_ratio: [10]",
     r"cifar100_lt_ir50 is imbalance_ratio=50 by its name, so a grid cannot vary it; vary cifar100_lt"),
    ("demo_lt.epochs: [1]", r"the epochs are a recipe setting; vary them with an axis 'epochs'"),
])
def test_data_set_axes_are_checked_like_set(tmp_path, axis, message):
    with pytest.raises(OverrideError, match=message):
        load_grid(_write(tmp_path, f"name: g\nregime: lora\naxes:\n  {axis}\n"))


def test_a_data_set_axis_gives_each_data_set_its_own_points(tmp_path):
    grid = load_grid(_write(tmp_path, "regime: lora\naxes:\n  rank: [2, 4]\n  demo_lt.imbalance_ratio: [10, 50]\n"
                                      "  synthetic_lt.max_per_class: [30]\n"))
    assert grid.datasets == ("demo_lt", "synthetic_lt") and not grid.runs_on("cifar100_lt")
    assert len(grid.points("demo_lt")) == 4 and len(grid.points("synthetic_lt")) == 2
    assert all("demo_lt.imbalance_ratio" not in point for point in grid.points("synthetic_lt"))
