"""Every error a verb prints goes through one redaction (cli.fail): a refusal that quotes a URL
with credentials in it, or a setting's secret, prints them blanked. Real `inv` processes that
refuse before connecting (the flags are checked first), as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopctl import settings

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Tr0ub4dor-3x"
SUDO_PASSWORD = "sudo-pw-9f2"
PUBLIC_URL = f"https://deploy-bot:{PASSWORD}@mcp.example.com:8443"


def inv(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env_file = tmp_path / "test.env"
    env_file.write_text(f"NAS_HOST=nas.invalid\nNAS_USER=ops\nNAS_KNOWN_HOSTS=/nonexistent\n"
                        f"NAS_SUDO_PASSWORD={SUDO_PASSWORD}\nPUBLIC_URL={PUBLIC_URL}\n"
                        f"AUDIT_LOG={tmp_path / 'audit.jsonl'}\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in settings.SETTINGS}}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**env, "LOOP_ENV_FILE": str(env_file)})


@pytest.mark.parametrize("value, shown", [
    (PUBLIC_URL, "'https://<redacted>@mcp.example.com:8443'"),
    (f"{PUBLIC_URL}/mcp", "'https://<redacted>@mcp.example.com:8443/mcp'"),
    # Not a setting: credentials in any URL (a git remote's, say) are blanked all the same.
    ("https://bob:t0ken-x1@git.example.com/app.git", "'https://<redacted>@git.example.com/app.git'"),
    # A setting's secret, wherever it turns up.
    (SUDO_PASSWORD, "'<redacted>'"),
    (f"{PASSWORD}", "'<redacted>'"),
])
def test_a_refusal_quoting_a_url_or_a_secret_prints_it_redacted(tmp_path, value, shown):
    result = inv(tmp_path, "logs", "--since", value)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"inv logs: error: --since takes a duration like 10m, 2h, 1d or a date like "
                             f"2026-11-25, not {shown}\n"), result.stderr
    for secret in (PASSWORD, SUDO_PASSWORD, "deploy-bot", "t0ken-x1", "bob:"):
        assert secret not in result.stdout + result.stderr
