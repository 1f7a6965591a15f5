"""The deploy's MCP gate (scripts/lib-mcp.sh), run with bash and curl as on the NAS, against
real MCP servers from the official SDK and against hostile ones: the new release is the
app's code, so what it answers is untrusted. Every run ends by its deadline, fails with one
printable line, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .servers.hostile import hostile_server

REPO = Path(__file__).resolve().parents[2]
SECONDS = 3  # MCP_CHECK_SECONDS for these runs
SLACK = 2.5

DRIVER = """
. "$1/scripts/lib.sh"
. "$1/scripts/lib-mcp.sh"
MCP_CHECK_SECONDS=$2
before=$(ls /tmp | grep -c '^tmp\\.' || true)
if mcp_tools "$3"; then rc=0; else rc=$?; fi
after=$(ls /tmp | grep -c '^tmp\\.' || true)
printf 'rc=%s\\nauth=%s\\nerror=%s\\nleft=%s\\n' "$rc" "$MCP_AUTH" "$MCP_ERROR" "$((after - before))"
printf 'tool=%s\\n' $MCP_TOOLS
"""


def gate(url: str) -> tuple[dict, list[str], float, str]:
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", DRIVER, "gate", str(REPO), str(SECONDS), url],
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    lines = done.stdout.splitlines()
    fields = dict(line.split("=", 1) for line in lines if not line.startswith("tool="))
    tools = [line.removeprefix("tool=") for line in lines if line.startswith("tool=") and line != "tool="]
    return fields, tools, seconds, done.stdout + done.stderr


def test_the_gate_lists_the_tools_of_a_legacy_sse_server(sse_server):
    fields, tools, _, out = gate(sse_server)
    assert fields["rc"] == "0", out
    assert tools == ["add", "echo"], out
    assert fields["left"] == "0" and not fields["auth"]


def test_the_gate_lists_the_tools_of_a_streamable_http_server(streamable_server):
    fields, tools, _, out = gate(streamable_server)
    assert fields["rc"] == "0", out
    assert tools == ["add", "echo"], out


def test_an_oauth_protected_server_is_reported_as_such_not_as_broken(oauth_server):
    fields, tools, _, out = gate(oauth_server)
    assert fields["rc"] == "0" and fields["auth"] == "401" and tools == [], out


def test_a_server_whose_tools_list_fails_fails_the_gate(failing_tools_server):
    fields, _, _, out = gate(failing_tools_server)
    assert fields["rc"] != "0" and "tools/list failed" in fields["error"], out


def test_nothing_listening_fails_at_once():
    fields, _, seconds, out = gate("http://127.0.0.1:9")
    assert fields["rc"] != "0" and "could not connect" in fields["error"], out
    assert seconds < 2


HOSTILE = ["endless-events", "get-endless-events", "endless-line", "get-endless-line", "get-endless-data",
           "huge-body", "gzip-bomb", "deep-json", "huge-headers", "endless-header-line", "drip", "get-drip-body",
           "escapes", "nothing"]


@pytest.fixture(scope="module")
def hostile():
    with hostile_server() as base:
        yield base


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_server_fails_the_gate_by_its_deadline_in_one_printable_line(hostile, name):
    fields, tools, seconds, out = gate(f"{hostile}/{name}")
    assert fields["rc"] != "0", out
    assert tools == [], out
    assert seconds <= SECONDS + SLACK, f"{seconds:.1f} s: {out}"
    error = fields["error"]
    assert error and error.isprintable() and len(error) <= 300, repr(error)
    assert fields["left"] == "0", "the gate left a temporary folder behind"
