"""`--set scope.field=value` overrides applied to typed dataclass configs."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class OverrideError(ValueError):
    pass


def parse_assignments(items: list[str]) -> dict[str, dict[str, str]]:
    """Split ["lift_plus.epochs=10", ...] into {"lift_plus": {"epochs": "10"}}; one field given two values is
    refused (the last would win without a word)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        scope, dot, field = key.strip().partition(".")
        if not sep or not dot or not scope or not field:
            raise OverrideError(f"bad --set {item!r}: expected SCOPE.FIELD=VALUE, e.g. lift_plus.epochs=10")
        earlier = out.setdefault(scope, {}).setdefault(field, value.strip())
        if earlier != value.strip():
            raise OverrideError(f"--set {scope}.{field} is given twice ({_quoted(earlier)} and "
                                f"{_quoted(value.strip())}); keep one")
    return out


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is tuple:
        return f"a list of {typing.get_args(annotation)[0].__name__} (e.g. 0,3,5)"
    return getattr(annotation, "__name__", str(annotation))


def _quoted(text: str) -> str:
    """A value in a message: quoted, and cut short when it would not fit on one line."""
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


def _whole_number_hint(text: str) -> str:
    """Why a number is not an int: '1e30' and '8.0' read as floats, never silently rounded."""
    try:
        float(text)
    except ValueError:
        return ""
    return " (a whole number: write it without a decimal point or exponent, e.g. 8)" \
        if "." in text or "e" in text.lower() else ""


def _convert(text: str, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        for kind in inner:  # the first type that reads the text: "3" is an int, "0,3" a list
            try:
                return _convert(text, kind, where)
            except OverrideError:
                if len(inner) == 1:
                    raise
        raise OverrideError(f"{where}: cannot read {_quoted(text)} as {' or '.join(map(_type_name, inner))}")
    if origin is tuple:  # tuple[int, ...]: "0,3,5", "[0, 3, 5]" or "(0,3,5)"; "[]" is empty
        body = text.strip()
        if body[:1] + body[-1:] in ("[]", "()"):
            body = body[1:-1]
        kind = typing.get_args(annotation)[0]
        return tuple(_convert(item.strip(), kind, where) for item in body.split(",") if item.strip())
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if text not in choices:
            raise OverrideError(f"{where}: {_quoted(text)} is not one of {', '.join(map(str, choices))}")
        return text
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if annotation in (int, float, str):
            return annotation(text)
    except ValueError:
        raise OverrideError(f"{where}: cannot read {_quoted(text)} as {annotation.__name__}"
                            f"{_whole_number_hint(text) if annotation is int else ''}") from None
    raise OverrideError(f"{where}: fields of type {annotation} cannot be set from the command line")


def apply_overrides(config: Any, values: dict[str, str], scope: str, option: str = "--set") -> Any:
    """Return a copy of the dataclass `config` with the string `values` converted to the field types; an error
    names the value as `option scope.field` (a grid point's scope, "grid NAME (REGIME)", takes no option)."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config) if f.init}
    changes = {}
    for name, text in values.items():
        if name not in fields:
            raise OverrideError(f"{scope} has no setting {name!r}; settings: {', '.join(sorted(fields))}")
        changes[name] = _convert(text, hints[name], f"{scope}.{name}")
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as exc:  # a value out of its range (bench.fields)
        raise OverrideError(f"{option} {scope}.{exc}".strip()) from None
