"""One contract across the SSH boundary: scripts/contract.env is read by bash and Python, and
neither side writes the numbers and names it holds by hand."""

import re
import subprocess
from pathlib import Path

import pytest

from loopctl import contract, settings as settings_module

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))
HELPFUL = [p for p in SCRIPTS if not p.name.startswith("lib")]


def test_bash_reads_the_same_values_python_does():
    names = " ".join(contract.VALUES)
    done = subprocess.run(["bash", "-c", f'. {REPO}/scripts/contract.env; for n in {names}; do echo "$n=${{!n}}"; done'],
                          capture_output=True, text=True, check=True)
    assert dict(line.split("=", 1) for line in done.stdout.splitlines()) == contract.VALUES


def test_settings_default_to_the_scripts_defaults():
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    assert settings.deploy_health_timeout == int(contract.HEALTH_TIMEOUT)
    assert settings.deploy_verify_seconds == int(contract.DEPLOY_VERIFY_SECONDS)
    assert settings.rollback_verify_seconds == int(contract.ROLLBACK_VERIFY_SECONDS)
    assert settings.deploy_build_timeout == int(contract.BUILD_TIMEOUT)
    assert settings.keep_releases == int(contract.KEEP_RELEASES)
    assert settings.keep_warm == (contract.KEEP_WARM == "1")
    assert settings.drain_seconds == int(contract.DRAIN_SECONDS)


@pytest.mark.parametrize("script", SCRIPTS + [REPO / "loopctl" / "commands.py", REPO / "loopctl" / "deploy.py"],
                         ids=lambda p: p.name)
def test_no_side_writes_the_contracts_exit_codes_or_state_names_by_hand(script):
    text = script.read_text()
    for literal in ("75", "69", "77", "74", "releases.tsv", "audit.jsonl", "deploy.lock", "upstream.conf"):
        code_lines = [l for l in text.splitlines() if not l.lstrip().startswith("#") and re.search(
            rf"(?<![\w.-]){re.escape(literal)}(?![\w.-])", l)]
        assert code_lines == [], f"{script.name} writes {literal!r} instead of reading contract.env: {code_lines}"


def test_the_proxy_listens_where_the_contract_says():
    assert f"listen {contract.PROXY_LISTEN_PORT};" in (REPO / "deploy" / "nginx" / "nginx.conf").read_text()


@pytest.mark.parametrize("script", HELPFUL, ids=lambda p: p.name)
def test_every_script_answers_help_with_its_usage_and_exit_0(script):
    done = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and done.stderr == ""


@pytest.mark.parametrize("script", [p for p in HELPFUL if p.name != "install.sh"], ids=lambda p: p.name)
def test_bad_usage_exits_64_with_the_usage_on_stderr(script):
    done = subprocess.run(["bash", str(script), "--no-such-flag", "x"], capture_output=True, text=True, timeout=10)
    assert done.returncode == contract.EXIT_USAGE
    assert "usage: " in done.stderr
