"""text.py's helpers for text others wrote: one line of it, and a NAS script's reason."""

from loopctl import contract
from loopctl.text import one_line, script_error


def test_one_line_folds_whitespace_drops_controls_and_cuts_with_an_ellipsis():
    assert one_line(" a\n\tb \x1b[31mc\x07 ") == "a b c"
    assert one_line("x" * 10, limit=10) == "x" * 10
    assert one_line("x" * 11, limit=10) == "x" * 9 + "…"


def test_script_error_is_the_text_of_the_last_error_line():
    output = f"{contract.STEP_PREFIX}building\n{contract.ERROR_PREFIX}first\nx\n{contract.ERROR_PREFIX}the build failed\n"
    assert script_error(output) == "the build failed"
    assert script_error(f"{contract.WARNING_PREFIX}careful\nno error here\n") == ""
