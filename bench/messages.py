"""Errors on the console in one line each: the whole text (a torch error's C++ backtrace, a library's advice
over several lines) belongs in the failure record or the log, not on the console."""
from __future__ import annotations

MAX_LINE = 500  # characters of an error message shown on one console line


def first_line(message: str) -> str:
    """The first non-empty line of an error message, cut to MAX_LINE characters."""
    line = next((text.strip() for text in message.splitlines() if text.strip()), "")
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"
