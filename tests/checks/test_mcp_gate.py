"""The deploy's MCP gate (scripts/lib-mcp.sh), run with bash and curl as on the NAS, against
real MCP servers from the official SDK and against hostile ones: the new release is the
app's code, so what it answers is untrusted. Every run ends by its deadline, fails with one
printable line, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .servers.hostile import SENT, large_tool_list

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
printf 'rc=%s\\nauth=%s\\nerror=%s\\nleft=%s\\nopening=%s\\n' "$rc" "$MCP_AUTH" "$MCP_ERROR" "$((after - before))" "$MCP_OPENING"
printf 'tool=%s\\n' $MCP_TOOLS
"""


def gate(url: str, timeout: float = 60, first: str = "") -> tuple[dict, list[str], float, str]:
    """Run the gate; past `timeout`, end it and all it started (a stuck awk too) and raise.
    `first`: MCP_FIRST, the opening a release passed its gate with."""
    started = time.monotonic()
    with subprocess.Popen(["bash", "-c", DRIVER, "gate", str(REPO), str(SECONDS), url], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True,
                          env={**os.environ, "MCP_FIRST": first}) as run:
        try:
            stdout, stderr = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise
    seconds = time.monotonic() - started
    lines = stdout.splitlines()
    fields = dict(line.split("=", 1) for line in lines if not line.startswith("tool="))
    tools = [line.removeprefix("tool=") for line in lines if line.startswith("tool=") and line != "tool="]
    return fields, tools, seconds, stdout + stderr


def test_the_gate_lists_the_tools_of_a_legacy_sse_server(sse_server):
    fields, tools, _, out = gate(sse_server)
    assert fields["rc"] == "0", out
    assert tools == ["add", "echo"], out
    assert fields["left"] == "0" and not fields["auth"]


def test_the_gate_lists_the_tools_of_a_streamable_http_server(streamable_server):
    fields, tools, _, out = gate(streamable_server)
    assert fields["rc"] == "0", out
    assert tools == ["add", "echo"], out


@pytest.mark.parametrize("server, answers", [("sse_server", {"sse"}), ("stateless_server", {"modern", "handshake"}),
                                             ("streamable_server", {"modern", "handshake"}),
                                             ("modern_only_server", {"modern"})])
def test_the_gate_says_which_opening_answered_and_a_recorded_one_is_tried_first(request, server, answers):
    """The gate records how a release answered (the newest way it speaks); its verifications open
    that way first, and start over in the usual order when it no longer answers so."""
    url = request.getfixturevalue(server)
    usual = ["modern", "handshake", "sse"]
    assert gate(url)[0]["opening"] == next(way for way in usual if way in answers)
    for first in usual:
        fields, tools, _, out = gate(url, first=first)
        expected = first if first in answers else next(way for way in usual if way in answers)
        assert (fields["rc"], fields["opening"], tools) == ("0", expected, ["add", "echo"]), (first, out)


def test_an_oauth_protected_server_is_reported_as_such_not_as_broken(oauth_server):
    fields, tools, _, out = gate(oauth_server)
    assert fields["rc"] == "0" and fields["auth"] == "401" and tools == [], out


def test_a_server_whose_tools_list_fails_fails_the_gate(failing_tools_server):
    fields, _, _, out = gate(failing_tools_server)
    assert fields["rc"] != "0" and "tools/list failed" in fields["error"], out


def test_nothing_listening_fails_at_once():
    fields, _, seconds, out = gate("http://127.0.0.1:9")
    assert fields["rc"] != "0" and fields["error"] == "server/discover: connection refused", out
    assert seconds < 2


HOSTILE = ["endless-events", "get-endless-events", "endless-line", "get-endless-line", "get-endless-data",
           "huge-body", "huge-initialize", "gzip-bomb", "deep-json", "huge-headers", "endless-header-line", "drip",
           "get-drip-body", "escapes", "nothing"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_server_fails_the_gate_by_its_deadline_in_one_printable_line(hostile, name):
    fields, tools, seconds, out = gate(f"{hostile}/{name}")
    assert fields["rc"] != "0", out
    assert tools == [], out
    assert seconds <= SECONDS + SLACK, f"{seconds:.1f} s: {out}"
    error = fields["error"]
    assert error and error.isprintable() and len(error) <= 300, repr(error)
    assert fields["left"] == "0", "the gate left a temporary folder behind"


# The live release the deploy replaces may be compromised, and the gate runs with the deploy's
# lock held: a tools/list reply of several MiB is refused as soon as 1 MiB of it is in, without
# reading on, and one just under 1 MiB is read whole, both within a second of its coming.
# server: what the gate says (None: it lists the tools).
LARGE = {
    "huge-tools": "tools/list: answer larger than 1 MiB",  # 3 MiB of descriptions, its length unsaid
    "huge-tools-sized": "tools/list: answer larger than 1 MiB",  # the same with its Content-Length
    "sse-huge-tools": "tools/list: no reply on the SSE stream (answer larger than 1 MiB)",  # on the legacy stream
    "many-tools": None,  # 6600 tools in just under 1 MiB
    "sse-many-tools": None,
}


@pytest.mark.parametrize("name, error", LARGE.items())
def test_a_large_tool_list_is_refused_over_1_mib_and_read_under_it_within_a_second(hostile, name, error):
    server = name.removeprefix("sse-")
    size = len(large_tool_list(server))
    assert (size > 3 * 2**20) if error else (1_000_000 < size < 2**20)
    SENT.pop(server, None)
    fields, tools, _, out = gate(f"{hostile}/{name}", timeout=30)
    waited = time.monotonic() - SENT[server]
    if error:
        assert fields["rc"] != "0" and tools == [] and fields["error"] == error, out
    else:
        assert fields["rc"] == "0" and tools == [f"tool_{i:05}" for i in range(6600)], out[-500:]
    assert waited < 1, f"{waited:.2f} s after the reply began to come"
    assert fields["left"] == "0", "the gate left a temporary folder behind"


# The first request is 2026-07-28's server/discover (the opening `inv mcp-check` makes too).
@pytest.mark.parametrize("name, error", [("huge-body", "server/discover: answer larger than 1 MiB"),
                                         ("huge-initialize", "server/discover: answer larger than 1 MiB")])
def test_an_answer_said_to_be_over_1_mib_is_refused_as_such_at_once(hostile, name, error):
    fields, _, seconds, out = gate(f"{hostile}/{name}")
    assert fields["rc"] != "0" and fields["error"] == error, out
    assert seconds < 1
