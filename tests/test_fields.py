"""Every integer a user can give, from --set, a grid file, --select or the command line, has an upper bound."""
import argparse
import dataclasses
import typing

import pytest

from bench.cli import build_parser
from bench.data import DATASETS, dataset_config
from bench.fields import field_error
from regimes import REGIMES


def _takes_int(annotation) -> bool:
    return annotation is int or any(_takes_int(arg) for arg in typing.get_args(annotation))


def _int_fields(config) -> list[str]:
    hints = typing.get_type_hints(type(config))
    return [f.name for f in dataclasses.fields(config) if f.init and _takes_int(hints[f.name])]


CONFIGS = [(f"regime {name}", REGIMES.get(name).recipe) for name in REGIMES.names()] + \
          [(f"data set {name}", dataset_config(name)) for name in DATASETS.names()]


@pytest.mark.parametrize("where, config", CONFIGS, ids=[where for where, _ in CONFIGS])
def test_every_integer_setting_has_an_upper_bound(where, config):
    fields = {f.name: f for f in dataclasses.fields(config)}
    unbounded = [name for name in _int_fields(config) if fields[name].metadata["bounds"].high is None]
    assert not unbounded, f"{where}: {unbounded} take any integer"
    for name in _int_fields(config):
        assert field_error(config, name, 10**30) is not None


def test_every_integer_option_has_an_upper_bound():
    options = [action for action in build_parser()._actions if getattr(action.type, "__name__", "") == "int"]
    assert {"--epochs", "--seeds", "--workers", "--eval-batch-size"} <= {action.option_strings[0] for action in options}
    for action in options:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            action.type(str(2**64))


def test_a_huge_integer_is_named_by_its_length_never_converted_to_a_float():
    recipe = REGIMES.get("lora").recipe
    with pytest.raises(ValueError, match=r"rank must be >= 1 and <= 65536, got a 400-digit number"):
        dataclasses.replace(recipe, rank=10**399)
    assert field_error(recipe, "rank", 10**30) == "must be >= 1 and <= 65536, got 1000000000000000000000000000000"
