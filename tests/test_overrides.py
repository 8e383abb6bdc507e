import pytest

from bench.overrides import OverrideError, apply_overrides, parse_assignments
from bench.training.recipe import Recipe


def test_parse_and_apply_typed_values():
    sets = parse_assignments(["full.lr=0.001", "full.tte=true", "full.epochs=none", "full.loss=ce",
                              "places_lt.split_dir=/x"])
    assert sets == {"full": {"lr": "0.001", "tte": "true", "epochs": "none", "loss": "ce"},
                    "places_lt": {"split_dir": "/x"}}
    recipe = apply_overrides(Recipe(epochs=3), sets["full"], "full")
    assert recipe.lr == 0.001 and recipe.tte is True and recipe.epochs is None and recipe.loss == "ce"


@pytest.mark.parametrize("item, message", [
    ("full.lr", "SCOPE.FIELD=VALUE"),
    ("lr=1", "SCOPE.FIELD=VALUE"),
])
def test_malformed_assignment(item, message):
    with pytest.raises(OverrideError, match=message):
        parse_assignments([item])


@pytest.mark.parametrize("field, value, message", [
    ("nope", "1", "has no setting 'nope'"),
    ("lr", "fast", "cannot read 'fast' as float"),
    ("loss", "hinge", "not one of la, ce, focal"),
    ("tte", "maybe", "cannot read 'maybe' as bool"),
])
def test_bad_values_name_the_problem(field, value, message):
    with pytest.raises(OverrideError, match=message):
        apply_overrides(Recipe(), {field: value}, "full")
