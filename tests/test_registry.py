import pytest

from bench.registry import Registry, UnknownNameError


def test_register_get_and_list():
    reg = Registry("widget")

    @reg.register("b")
    class B: ...

    @reg.register("a")
    class A: ...

    assert reg.get("a") is A and reg.get("b") is B
    assert reg.names() == ["a", "b"] and "a" in reg and "c" not in reg


def test_unknown_name_lists_valid_ones():
    reg = Registry("widget")
    reg.register("alpha")(object)
    with pytest.raises(UnknownNameError, match="unknown widget 'beta'; valid widgets: alpha"):
        reg.get("beta")


def test_duplicate_registration_is_refused():
    reg = Registry("widget")
    reg.register("x")(int)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x")(float)
