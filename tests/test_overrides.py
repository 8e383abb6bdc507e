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
    ("loss", "hinge", "not one of bs, cb, ce, focal"),
    ("tte", "maybe", "cannot read 'maybe' as bool"),
])
def test_bad_values_name_the_problem(field, value, message):
    with pytest.raises(OverrideError, match=message):
        apply_overrides(Recipe(), {field: value}, "full")


@pytest.mark.parametrize("text", ["1e30", "8.0", "1.5e3"])
def test_a_float_for_an_int_field_says_it_needs_a_whole_number(text):
    with pytest.raises(OverrideError, match=rf"full.batch_size: cannot read '{text}' as int \(a whole number"):
        apply_overrides(Recipe(), {"batch_size": text}, "full")


def test_an_int_field_that_is_not_a_number_gets_no_whole_number_hint():
    with pytest.raises(OverrideError, match=r"cannot read 'eight' as int$"):
        apply_overrides(Recipe(), {"batch_size": "eight"}, "full")


def test_a_long_value_is_cut_short_in_the_message():
    with pytest.raises(OverrideError, match=r"cannot read '9{20}'\.\.\. \(5000 characters\) as int$"):
        apply_overrides(Recipe(), {"batch_size": "9" * 5000}, "full")


def test_bounds_are_named_with_the_option_that_set_them():
    with pytest.raises(OverrideError, match=r"^--set full.batch_size must be >= 1 and <= 1048576, got 2097152$"):
        apply_overrides(Recipe(), {"batch_size": str(2**21)}, "full")
    with pytest.raises(OverrideError, match=r"^grid g \(full\).batch_size must be >= 1 and <= 1048576"):
        apply_overrides(Recipe(), {"batch_size": str(2**21)}, "grid g (full)", option="")


def test_one_field_given_two_values_is_refused():
    with pytest.raises(OverrideError, match=r"--set lora.rank is given twice \('2' and '4'\); keep one"):
        parse_assignments(["lora.rank=2", "lora.lr=0.1", "lora.rank=4"])
    assert parse_assignments(["lora.rank=2", "lora.rank=2"]) == {"lora": {"rank": "2"}}  # the same value twice
