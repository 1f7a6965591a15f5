"""Every way out of the check verbs is a plugin code: Invoke's own flag errors, a URL that
cannot be sent and a CA file that holds no certificates are UNKNOWN (3), never 1 (WARNING)
or CRITICAL; and each check reads only its own settings, so a broken SSH setting or one
of the other check's leaves it alone."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("args, line", [
    (("health", "--bogus"), "LOOP UNKNOWN - No idea what '--bogus' is! (see: inv --help health)"),
    (("health", "--no-alert", "extra"), "LOOP UNKNOWN - No idea what 'extra' is! (see: inv --help health)"),
    (("--echo", "mcp-check", "--nope"), "LOOP MCP UNKNOWN - No idea what '--nope' is! (see: inv --help mcp-check)"),
    (("mcp-check", "--timeout"), "LOOP MCP UNKNOWN - --timeout needs a value (see: inv --help mcp-check)"),
])
def test_a_flag_invoke_cannot_parse_is_unknown_with_a_plugin_line(inv, args, line):
    run = inv(*args, PUBLIC_URL="http://127.0.0.1:1")
    assert (run.code, run.stdout, run.stderr) == (3, line + "\n", "")


def test_a_flag_error_with_json_is_a_json_report(inv):
    run = inv("health", "--json", "--bogus", PUBLIC_URL="http://127.0.0.1:1")
    assert run.code == 3 and json.loads(run.stdout)["status"] == "UNKNOWN"


def test_a_url_with_a_space_is_unknown_not_critical(inv):
    run = inv("health", "--url", "http://a b")
    assert (run.code, run.line) == (
        3, "LOOP UNKNOWN - PUBLIC_URL='http://a b' is invalid: expected a URL without spaces "
           "(write a space in a path as %20)")
    assert inv("mcp-check", "--url", "http://a b").code == 3


def test_a_ca_bundle_without_certificates_is_unknown_not_critical(inv, tls_fresh, tmp_path):
    base, _ = tls_fresh
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    for verb in ("health", "mcp-check"):
        run = inv(verb, PUBLIC_URL=base, CHECK_CA_BUNDLE=str(garbage))
        assert run.code == 3, run
        assert f"UNKNOWN - CHECK_CA_BUNDLE='{garbage}' cannot be read as CA certificates" in run.line, run.line


def test_the_checks_read_only_their_own_settings(inv, health_server, sse_server, tmp_path):
    base, _ = health_server
    env_file = tmp_path / "settings.env"
    env_file.write_text("NAS_PORT=22x\nNAS_HOST=user@nas\nDEPLOY_VERIFY_SECONDS=0\nMCP_PATH=no-slash\n")
    run = inv("health", "--no-alert", PUBLIC_URL=base, LOOP_ENV_FILE=str(env_file))
    assert run.code == 0, run
    env_file.write_text("NAS_PORT=22x\nHEALTH_EXPECT=ok\nCHECK_RETRIES=many\n")
    run = inv("mcp-check", PUBLIC_URL=sse_server, LOOP_ENV_FILE=str(env_file))
    assert run.code == 0, run
    # A setting a check does use is still checked.
    assert inv("health", "--no-alert", PUBLIC_URL=base, LOOP_ENV_FILE=str(env_file)).code == 3


def test_a_broken_settings_file_is_unknown(inv, tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text("PUBLIC_URL=http://127.0.0.1:1\nCHECK_TIMOUT=3\n")
    run = inv("health", LOOP_ENV_FILE=str(env_file))
    assert (run.code, run.line) == (
        3, f"LOOP UNKNOWN - {env_file}:2: CHECK_TIMOUT is not a loopctl setting; did you mean CHECK_TIMEOUT?")
    run = inv("health", LOOP_ENV_FILE=str(tmp_path / "missing.env"))
    assert run.code == 3 and "does not exist" in run.line
