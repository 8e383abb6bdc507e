from bench.messages import MAX_LINE, first_line


def test_an_error_on_the_console_is_its_first_non_empty_line_cut_to_a_length():
    assert first_line("\n  shape '[2, -1]' is invalid  \nException raised from infer_size_impl\nframe #0: c10") == \
        "shape '[2, -1]' is invalid"
    assert first_line("") == "" and first_line("one line") == "one line"
    cut = first_line("x" * (MAX_LINE + 100))
    assert len(cut) == MAX_LINE and cut.endswith("…") and first_line("x" * MAX_LINE) == "x" * MAX_LINE
