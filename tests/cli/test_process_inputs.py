"""Small inputs through real processes, none of which gets as far as connecting: bad flags are
one line and exit 2 (`inv` run as a user runs it, a new process), and names from git config
(git runs) are shown safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopctl import audit, settings

REPO = Path(__file__).resolve().parents[2]


def inv(tmp_path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    env_file = tmp_path / "test.env"
    env_file.write_text("NAS_HOST=nas.invalid\nNAS_USER=ops\nNAS_KNOWN_HOSTS=/nonexistent\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in settings.SETTINGS}}
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
