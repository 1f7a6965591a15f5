"""One table of MCP servers, run against both of loopctl's MCP clients: the deploy's gate
(scripts/lib-mcp.sh, bash and curl as on the NAS) and `inv mcp-check` (loopctl/checks/mcp.py).
Each row must get the same verdict from each: the transport and revision they found and the
tools they listed, the same "sign-in required", or the same failure in the same words. The
servers are real ones built with the official MCP SDK, the broken and hostile ones the checks
already face, and nothing at all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopctl.settings import SETTINGS


REPO = Path(__file__).resolve().parents[2]
SECONDS = 3  # MCP_CHECK_SECONDS of the gate, CHECK_TIMEOUT and CHECK_DEADLINE of the check

GATE = """
. "$1/scripts/lib.sh"
. "$1/scripts/lib-mcp.sh"
MCP_CHECK_SECONDS=$2 APP_MCP_PATH=$4
if mcp_tools "$3"; then rc=0; else rc=$?; fi
printf '%s\\n' "rc=$rc" "auth=$MCP_AUTH" "error=$MCP_ERROR" "transport=$MCP_TRANSPORT" "revision=$MCP_REVISION"
printf 'tool=%s\\n' $MCP_TOOLS
"""


def gate_verdict(base: str, path: str) -> tuple:
    with subprocess.Popen(["bash", "-c", GATE, "gate", str(REPO), str(SECONDS), base, path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as run:
        try:
            out, _ = run.communicate(timeout=SECONDS + 10)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise
    lines = out.splitlines()
    fields = dict(line.split("=", 1) for line in lines if not line.startswith("tool="))
    tools = sorted(line[5:] for line in lines if line.startswith("tool=") and line != "tool=")
    if fields["rc"] == "0" and fields["auth"]:
        return ("sign-in required",)
    if fields["rc"] == "0":
        return ("ok", fields["transport"], fields["revision"], tools)
    return ("fail", fields["error"])


def check_verdict(base: str, path: str) -> tuple:
    env = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in SETTINGS}}
    env.update(LOOP_ENV_FILE=os.devnull, PUBLIC_URL=base, MCP_PATH=path, CHECK_TIMEOUT=str(SECONDS),
               CHECK_DEADLINE=str(SECONDS), CHECK_RETRIES="0")
    done = subprocess.run([sys.executable, "-m", "invoke", "mcp-check", "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=SECONDS + 10, env=env)
    report = json.loads(done.stdout)
    if "oauth" in report:
        return ("sign-in required",)
    if report["status"] == "OK":
        return ("ok", report["transport"], report["protocol_version"], report["tool_names"])
    return ("fail", report["summary"])


# row: (server fixture, base path, MCP path, the verdict both must give)
SDK = ["add", "echo"]
ROWS = {
    "legacy HTTP+SSE": ("sse_server", "", "/mcp", ("ok", "legacy HTTP+SSE", "2025-11-25", SDK)),
    "Streamable HTTP, 2026-07-28 and sessions": ("streamable_server", "", "/mcp", ("ok", "Streamable HTTP", "2026-07-28", SDK)),
    "Streamable HTTP before 2026 (initialize, Mcp-Session-Id)": ("handshake_server", "", "/mcp",
                                                                 ("ok", "Streamable HTTP", "2025-11-25", SDK)),
    "stateless Streamable HTTP, JSON replies": ("stateless_server", "", "/mcp", ("ok", "Streamable HTTP", "2026-07-28", SDK)),
    "2026-07-28 only (initialize unknown)": ("modern_only_server", "", "/mcp", ("ok", "Streamable HTTP", "2026-07-28", SDK)),
    "2026-07-28 declined, older revisions offered": ("declines_modern_server", "", "/mcp",
                                                     ("ok", "Streamable HTTP", "2025-11-25", SDK)),
    "OAuth-protected (401, resource metadata)": ("oauth_server", "", "/mcp", ("sign-in required",)),
    "tools/list answers a JSON-RPC error": ("failing_tools_server", "", "/mcp", (
        "fail", "tools/list failed: JSON-RPC error -32603: tool registry unavailable")),
    "a proxy that drops Mcp-Method": ("header_dropping_server", "", "/mcp", (
        "fail", "server/discover failed: JSON-RPC error -32020: mcp-method header does not match the request "
                "body's method (is a proxy dropping MCP headers?)")),
    "an HTML login page": ("broken_server", "/login", "/mcp", ("fail", "POST /login/mcp: HTTP 200 (HTML page 'Sign in'), not MCP")),
    "nginx's 502 page": ("broken_server", "/down", "/mcp", (
        "fail", "POST /down/mcp: server error HTTP 502 (nginx error page '502 Bad Gateway')")),
    "no MCP at that path": ("sse_server", "", "/nothing", (
        "fail", "not an MCP endpoint: server/discover HTTP 404, initialize HTTP 404, "
                "GET HTTP 404 (application/json '{\"detail\":\"Not Found\"}')")),
    "an event stream without an endpoint event": ("broken_server", "/no-endpoint", "/mcp", (
        "fail", f"GET /no-endpoint/mcp: no endpoint event on the SSE stream (no answer within {SECONDS} s)")),
    "an endpoint event, then silence": ("broken_server", "/mute", "/mcp", (
        "fail", f"initialize: no reply on the SSE stream (no answer within {SECONDS} s)")),
    "a server that never answers": ("hung_server", "", "/mcp", ("fail", f"server/discover: no answer within {SECONDS} s")),
    "nothing listening": (None, "http://127.0.0.1:9", "/mcp", ("fail", "server/discover: connection refused")),
    "an endless event stream": ("hostile", "/endless-events", "/mcp", None),
    "an oversized reply": ("hostile", "/huge-body", "/mcp", ("fail", "server/discover: answer larger than 1 MiB")),
    "a reply that drips": ("hostile", "/drip", "/mcp", None),
}


def same_bound(verdict: tuple) -> tuple:
    return tuple(re.sub(r"within \d+(?:\.\d+)? s", "within N s", part) if isinstance(part, str) else part
                 for part in verdict)


@pytest.mark.parametrize("row", ROWS)
def test_the_gate_and_the_check_give_the_same_verdict(request, row):
    fixture, base, path, expected = ROWS[row]
    if fixture:
        base = request.getfixturevalue(fixture) + base
    started = time.monotonic()
    gate = gate_verdict(base, path)
    check = check_verdict(base, path)
    # How long "no answer within" waited: the check counts down its deadline, the gate says its bound.
    gate, check = same_bound(gate), same_bound(check)
    assert gate == check, f"gate: {gate}\ncheck: {check}"
    if expected is not None:
        assert gate == same_bound(expected)
    else:
        assert gate[0] == "fail"
    assert time.monotonic() - started < 2 * SECONDS + 6
