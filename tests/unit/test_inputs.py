"""Small inputs: bad flags are one line and exit 2, names from git config and secrets that
share a beginning are shown safely. Verbs run as a user runs them (a new process); none of
these gets as far as connecting."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopctl import audit, settings
from loopctl.cli import fail
from loopctl.errors import RemoteFailed
from loopctl.runner import Scrubbed
from loopctl.text import printable, redact

REPO = Path(__file__).resolve().parents[2]


def inv(tmp_path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    env_file = tmp_path / "test.env"
    env_file.write_text("NAS_HOST=nas.invalid\nNAS_USER=ops\nNAS_KNOWN_HOSTS=/nonexistent\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in {s.name for s in settings.SETTINGS}}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**env, "LOOP_ENV_FILE": str(env_file), **environ})


@pytest.mark.parametrize("args, message", [
    (("audit", "--lines", "²"), "inv audit: error: --lines takes a whole number (0 or more), not '²'"),
    (("audit", "--lines", "٣"), "inv audit: error: --lines takes a whole number (0 or more), not '٣'"),
    (("logs", "--tail", "²"), "inv logs: error: --tail takes a whole number (0 or more), not '²'"),
])
def test_a_non_ascii_digit_in_a_flag_is_one_line_and_exit_2(tmp_path, args, message):
    result = inv(tmp_path, *args)
    assert (result.returncode, result.stderr) == (2, message + "\n"), result.stderr


@pytest.mark.parametrize("host, hint", [("nas.lan:2222", "NAS_PORT"), ("ops@nas.lan", "NAS_USER")])
def test_nas_host_with_a_port_or_user_is_one_line_and_exit_2(tmp_path, host, hint):
    result = inv(tmp_path, "audit", NAS_HOST=host)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"NAS_HOST='{host}' is invalid" in result.stderr and hint in result.stderr


def test_performer_from_git_config_is_one_printable_line(tmp_path, monkeypatch):
    gitconfig = tmp_path / "gitconfig"
    subprocess.run(["git", "config", "--file", str(gitconfig), "user.name",
                    "Ann\x1b]0;owned\x07 \x1b[31mExample\x1b[0m\x9b2J\tJr"], check=True)
    subprocess.run(["git", "config", "--file", str(gitconfig), "user.email", "ann@example.com\x07"], check=True)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)
    assert audit.performer() == "Ann Example Jr <ann@example.com>"
    record = audit.make_record("restart", {}, "ops@nas:22", 0, 1.0)
    assert record["performer"] == "Ann Example Jr <ann@example.com>"
    assert "\\u001b" not in json.dumps(record)


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
