"""Typed config fields with their valid range: every number a user can set is checked where it is set.

A field declared with `setting(default, low=..., high=...)` carries its bounds in the dataclass field's
metadata; `check_fields(config)` (called from each config's `__post_init__`) rejects a value out of
range, and every float field, declared or not, must be finite: `--set full.lr=inf` never reaches training.
Every integer field has an upper bound too (tests/test_fields.py): `--set lora.rank=10000000000` stops here,
naming the field, not in the job.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

MAX_EPOCHS = 10_000  # per-epoch seeds are seed·100003 + epoch: epochs below this never collide across seeds
MAX_SIZE = 2**16  # ranks, bottlenecks, prompt lengths, block counts, images per class: far beyond any model or data set
MAX_BATCH = 2**20  # images in one batch
MAX_SIDE = 1024  # pixels of a generated image's side or of the margin added before the test crop
MAX_PROCESSES = 1024  # jobs at a time, jobs per GPU, loader workers per job


@dataclass(frozen=True)
class Bounds:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {_text(self.low)}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {_text(self.high)}"
        return " and ".join(part for part in (low, high) if part)


def _text(value: float) -> str:
    """A bound or value as the user would write it: 2147483647, not 2.14748e+09; an int too long to show (or to
    convert to a float) by its length."""
    if isinstance(value, int):
        digits = str(abs(value))
        return str(value) if len(digits) <= 32 else f"a {len(digits)}-digit number"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def setting(default: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, help: str = "", identity: bool | str = True) -> Any:
    """A dataclass field with a valid range (None, where the type allows it, always passes). `identity=False`:
    a setting that only lets a run through a check (never changes a number), so it stays out of the job id;
    `identity="unless_default"`: a setting added after job ids were first written, hashed only when it differs
    from its default, so that the jobs of earlier run folders keep their ids."""
    return dataclasses.field(default=default, metadata={
        "bounds": Bounds(low, high, low_open, high_open), "help": help, "identity": identity})


def identity_fields(config: Any) -> dict:
    """The config as a dict, less the settings that `setting(identity=...)` keeps out: what a job id hashes."""
    dropped = {f.name for f in dataclasses.fields(config) if f.metadata.get("identity") is False or (
        f.metadata.get("identity") == "unless_default" and getattr(config, f.name) == f.default)}
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in dropped}


def field_help(config_type: type, name: str) -> str:
    """A field's help line, from the nearest class that gave one: a subclass that only changes a default (the
    standard folder of ImageNet-LT) keeps its parent's help."""
    for cls in config_type.__mro__:
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if name in fields and fields[name].metadata.get("help"):
            return fields[name].metadata["help"]
    return ""


def field_error(config: Any, name: str, value: Any) -> str | None:
    """Why `value` is not valid for field `name` of `config`, or None."""
    if value is None or isinstance(value, (bool, str)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    bounds = next(f for f in dataclasses.fields(config) if f.name == name).metadata.get("bounds")
    if bounds is not None and isinstance(value, (int, float)) and not bounds.admits(value):
        return f"must be {bounds.describe()}, got {_text(value)}"
    return None


def check_fields(config: Any) -> None:
    """Raise ValueError naming the field for the first value out of its range (or not finite); call it from
    the config's `__post_init__` (apply_overrides adds the `--set SCOPE.` in front)."""
    for f in dataclasses.fields(config):
        problem = field_error(config, f.name, getattr(config, f.name))
        if problem:
            raise ValueError(f"{f.name} {problem}")


def number(kind: type, low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """An argparse `type` for a finite int or float in range: bad values stop at parse time with exit 2."""
    bounds = Bounds(low, high, low_open)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if not bounds.admits(value):
            raise argparse.ArgumentTypeError(f"must be {bounds.describe()}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
