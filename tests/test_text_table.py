import pytest

from bench.text_table import DASH, format_cell, format_table


def test_columns_are_as_wide_as_their_widest_cell_and_two_spaces_apart():
    table = format_table(["name", "n"], [["a", "12345"], ["longer name", "7"]])
    assert table.splitlines() == ["name         n",
                                  "-----------  -----",
                                  "a            12345",
                                  "longer name  7"]


def test_rule_spans_every_column_and_trailing_spaces_are_stripped_elsewhere():
    header, rule, row = format_table(["a", "bbb"], [["xxxx", ""]]).splitlines()
    assert header == "a     bbb" and row == "xxxx"  # the empty last cell leaves no trailing spaces
    assert rule == "----  ---" and len(rule) == len("xxxx  bbb")


def test_no_rows_is_the_header_and_the_rule():
    assert format_table(["x", "yy"], []) == "x  yy\n-  --"


def test_rows_need_a_cell_per_column():
    with pytest.raises(ValueError, match="2 cells"):
        format_table(["a", "b"], [["only one"]])


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_values_become_a_dash(value):
    assert format_cell(value, "{:.2f}") == DASH == "–"
    assert format_cell(value, "{:.2f}", "-") == "-"


def test_present_values_use_the_format_zero_included():
    assert format_cell(0.0, "{:.2f}") == "0.00" and format_cell(0, "{}") == "0"
    assert format_cell(1234567, "{:,}") == "1,234,567" and format_cell("done") == "done"
    assert format_cell(float("inf"), "{:.1f}") == "inf"


def test_missing_cells_line_up_with_the_rest():
    rows = [[format_cell(v, "{:.1f}") for v in row] for row in ([1.25, None], [float("nan"), 10.0])]
    assert format_table(["first", "second"], rows).splitlines()[2:] == ["1.2    –", "–      10.0"]
