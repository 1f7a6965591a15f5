"""Small inputs: secrets that share a beginning, remote error text and control characters are
shown safely. (Bad flags and names from git config, which need a process, are in tests/cli.)"""

from __future__ import annotations

import io
import os

from loopctl import settings
from loopctl.cli import fail
from loopctl.errors import RemoteFailed
from loopctl.runner import Scrubbed
from loopctl.text import printable, redact


def test_the_longest_secret_is_blanked_first_everywhere():
    """A sudo password that begins MCP_TOKEN must not leave the token's tail visible."""
    loaded = settings.load({"LOOP_ENV_FILE": os.devnull, "NAS_SUDO_PASSWORD": "pw123",
                            "MCP_TOKEN": "pw123-TOKEN-TAIL"})
    assert redact("token pw123-TOKEN-TAIL, password pw123", loaded.secrets()) == \
        "token <redacted>, password <redacted>"
    sink = io.StringIO()
    stream = Scrubbed(sink, loaded.secrets())
    stream.write("Authorization: Bearer pw123-TOKEN-TAIL\n")
    assert sink.getvalue() == "Authorization: Bearer <redacted>\n"


def test_an_error_ending_in_remote_text_is_one_printable_line():
    error = RemoteFailed("nas: `docker restart x` exited 1: \x1b]0;owned\x07bad\x1b[2J\nnext line")
    exit_ = fail("restart", error)
    assert exit_.message == "inv restart: error: nas: `docker restart x` exited 1: bad next line"
    assert exit_.code == 6


def test_printable_keeps_tabs_and_newlines_only():
    assert printable("a\tb\nc\r\x00\x1b[1mD\x1b[0m\x7f\x85\x9b0m") == "a\tb\ncD"
