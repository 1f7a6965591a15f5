"""MCP-native deploys on the sandbox, with the official MCP SDK as the client: the gate
before the switch, sessions that follow the color which made them, the warm standby, and a
rollback that is a switch."""

from __future__ import annotations

import http.client
import re
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from rig.clients import FreshSessions, HeldSession
from rig.load import Load
from rig.sandbox import APP_DIR, LOOPCTL_HOME, PROXY, commit_change, get, inv, serving, sh
from .support import edited_main, running_api_colors

UPSTREAM = f"{LOOPCTL_HOME}/state/nginx/upstream.conf"


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def image_of(color: str) -> str:
    return sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{color}").stdout.strip()


def standby_in_upstream() -> str:
    found = re.search(r"\$loop_standby_color \{ default (\w+); \}", sh(f"cat {UPSTREAM}").stdout)
    return found.group(1) if found else ""


def assert_nothing_changed(color: str, commit: str, releases_before: str) -> None:
    assert serving() == (color, commit)
    assert inv("releases").stdout == releases_before
    assert f"loop-api:{commit}" == image_of(color)


def test_a_session_held_through_rebuild_then_rollback_loses_no_tool_call(deployed):
    """Legacy HTTP+SSE, as production: one SDK session making a tool call every 250 ms,
    fresh sessions one after another and 50 requests a second, through a rebuild and a
    rollback. The old color stays up as the warm standby, and the rollback is a switch."""
    old_color, old_commit = serving()
    new_commit = commit_change(f"held-{time.time()}")
    with HeldSession("sse") as held, FreshSessions("sse") as fresh, Load(rate=50) as load:
        rebuilt = inv("rebuild")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert serving() == (other(old_color), new_commit)
        # The old color runs on as the standby the proxy sends the held session to.
        assert running_api_colors() == ["blue", "green"]
        assert standby_in_upstream() == old_color
        calls_after_rebuild = held.calls
        time.sleep(1)
        rolled = inv("rollback")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        time.sleep(1)
    assert held.failures == [], held.failures[:5]
    assert fresh.failures == [], fresh.failures[:5]
    assert load.failures == [], load.failures[:5]
    assert held.calls > calls_after_rebuild > 10 and fresh.calls > 10
    assert serving() == (old_color, old_commit)
    # The rollback only switched: nothing was started, and the release it left is the standby now.
    assert "MCP gate" not in rolled.stdout and "waiting for" not in rolled.stdout
    assert running_api_colors() == ["blue", "green"]
    assert standby_in_upstream() == other(old_color)
    assert re.search(r"MCP gate passed on loop-api-\w+ in [\d.]+s; tools: 2 -> 2", rebuilt.stdout), rebuilt.stdout
    assert "tools 2->2" in rebuilt.stdout


def test_status_shows_the_standby_and_each_colors_open_streams(deployed):
    color, _ = serving()
    commit_change(f"status-{time.time()}")
    assert inv("rebuild").returncode == 0
    with HeldSession("sse") as held:
        status = inv("status")
    assert not held.failures
    assert status.returncode == 0, status.stdout + status.stderr
    # The held session's stream was opened on the new live color.
    assert re.search(rf"^standby +loop-api-{color} +commit \w+, running", status.stdout, re.M), status.stdout
    assert streams_column(status.stdout) == {f"loop-api-{other(color)}": "1", f"loop-api-{color}": "0"}, status.stdout


def test_a_release_whose_mcp_is_broken_never_gets_traffic(deployed):
    color, commit = serving()
    colors = running_api_colors()
    releases_before = inv("releases").stdout
    broken_mcp = ("app.router.routes.insert(0, __import__('fastapi').routing.APIRoute('/mcp', lambda: "
                  "__import__('fastapi').Response(status_code=404), methods=['GET', 'POST']))\n")
    with edited_main("mcp gone", lambda text: text + broken_mcp) as broken, Load(rate=20) as load:
        result = inv("rebuild")
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert "the MCP gate failed on loop-api-" in error and "404" in error, result.stderr
    assert load.failures == [] and load.colors == {color}
    assert_nothing_changed(color, commit, releases_before)
    assert sh(f"docker inspect loop-api-{other(color)}", check=False).returncode != 0 or \
        image_of(other(color)) != f"loop-api:{broken}"
    # The standby the deploy replaced runs its release again; nothing of the broken one is left.
    assert running_api_colors() == colors


def test_removing_a_tool_needs_the_flag(deployed):
    color, commit = serving()
    releases_before = inv("releases").stdout
    without_tool = lambda text: text.replace("@mcp.tool()\ndef vault_list", "def vault_list")  # noqa: E731
    with edited_main("vault_list gone", without_tool) as fewer:
        refused = inv("rebuild")
        assert refused.returncode != 0
        assert "removes vault_list" in refused.stderr and "--allow-tool-removal" in refused.stderr, refused.stderr
        assert_nothing_changed(color, commit, releases_before)

        allowed = inv("rebuild", "--allow-tool-removal")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "tools: 2 -> 1, removed: vault_list" in allowed.stdout
        assert serving() == (other(color), fewer)
    # Back to both tools: an addition needs no flag.
    again = inv("rebuild")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tools: 1 -> 2, added: vault_list" in again.stdout


def test_the_standby_is_replaced_at_the_next_deploy(deployed):
    first_color, first = serving()
    second = commit_change(f"second-{time.time()}")
    assert inv("rebuild").returncode == 0
    assert image_of(first_color) == f"loop-api:{first}"  # the warm standby
    third = commit_change(f"third-{time.time()}")
    with HeldSession("sse") as held:
        result = inv("rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"replacing the warm standby loop-api-{first_color} ({first})" in result.stdout
    assert serving() == (first_color, third)
    assert image_of(other(first_color)) == f"loop-api:{second}"
    assert standby_in_upstream() == other(first_color)
    # The held session was made on the second release, now the standby: it goes on.
    assert held.failures == []


def test_without_keep_warm_the_old_color_stops_and_rollback_starts_it(deployed):
    color, commit = serving()
    assert inv("setup", env={"KEEP_WARM": "0"}).returncode == 0
    try:
        commit_change(f"cold-{time.time()}")
        result = inv("rebuild", env={"KEEP_WARM": "0"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert running_api_colors() == [other(color)]
        assert standby_in_upstream() == "none"
        rolled = inv("rollback", env={"KEEP_WARM": "0"})
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert "MCP gate passed" in rolled.stdout
        assert serving() == (color, commit)
        assert running_api_colors() == [color]
    finally:
        restored = inv("setup")
    assert restored.returncode == 0, restored.stdout + restored.stderr


def test_a_session_the_colors_do_not_know_gets_404_even_with_the_standby_down(deployed):
    """404 is the answer on which MCP clients open a new session; a 502 would not make them."""
    color, _ = serving()
    commit_change(f"gone-{time.time()}")
    assert inv("rebuild").returncode == 0
    unknown = "/mcp/messages/?session_id=0123456789abcdef0123456789abcdef"
    assert post_message(unknown)[0] == 404
    sh(f"docker stop -t 1 loop-api-{color}")
    assert post_message(unknown)[0] == 404
    status = inv("status")
    assert re.search(rf"^standby +loop-api-{color} \(exited\): sessions it held get 404", status.stdout, re.M), \
        status.stdout
    result = inv("rebuild")  # the next deploy replaces the stopped standby
    assert result.returncode == 0, result.stdout + result.stderr
    assert serving()[0] == color


def streams_column(status: str) -> dict[str, str]:
    """The STREAMS column of `inv status` for the api colors."""
    rows = [line.split() for line in status.splitlines() if line.startswith("loop-api-")]
    return {row[0]: row[-1] for row in rows}


def post_message(path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(*PROXY, timeout=5)
    try:
        conn.request("POST", path, body=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@contextmanager
def app_transport(transport: str) -> Iterator[subprocess.CompletedProcess]:
    """The app built for another MCP transport (its LOOP_MCP_TRANSPORT): its checkout's .env
    (untracked, as production's) says so, and loopctl deploys the compose file as the app
    defines it. Yields that rebuild; afterwards legacy HTTP+SSE again, deployed."""
    env = f"{APP_DIR}/.env"
    before = sh(f"cat {env}", check=False).stdout
    sh(f"printf '%s\\nLOOP_MCP_TRANSPORT={transport}\\n' \"$(grep -v ^LOOP_MCP_TRANSPORT= {env} || true)\" "
       f"> {env}.new && chown --reference={env} {env}.new && mv {env}.new {env}")
    try:
        commit_change(f"{transport}-{time.time()}")
        result = inv("rebuild")
        assert result.returncode == 0, result.stdout + result.stderr
        yield result
    finally:
        sh(f"cat > {env} <<'EOF'\n{before}EOF")
        commit_change(f"sse-again-{time.time()}")
        back = inv("rebuild")
        assert back.returncode == 0, back.stdout + back.stderr
        assert "legacy HTTP+SSE, protocol" in back.stdout, back.stdout


@pytest.fixture
def streamable(deployed):
    with app_transport("streamable"):
        yield


def test_streamable_http_sessions_follow_their_color_through_rebuild_and_rollback(streamable):
    status, headers, _ = get("/health")
    old_color = headers["x-loop-color"]
    commit_change(f"streamable-held-{time.time()}")
    with HeldSession("streamable") as held, FreshSessions("streamable") as fresh:
        assert inv("rebuild").returncode == 0
        assert serving()[0] == other(old_color)
        time.sleep(1)
        assert inv("rollback").returncode == 0
        time.sleep(1)
    assert held.failures == [], held.failures[:5]
    assert fresh.failures == [], fresh.failures[:5]
    assert serving()[0] == old_color


# A release may change transport: from legacy HTTP+SSE to a Streamable HTTP server without
# sessions (JSON replies), or to one that speaks only MCP 2026-07-28 (no `initialize`), and
# back. The gate judges the candidate by what it serves and compares tools across transports;
# clients of the new transport lose nothing through a rebuild and a rollback.
@pytest.mark.parametrize("transport", ["stateless", "modern"])
def test_a_release_that_changes_transport_deploys_and_rolls_back_losing_nothing(deployed, transport):
    with app_transport(transport) as moved:
        assert re.search(r"MCP gate passed on loop-api-\w+ in [\d.]+s; tools: 2 -> 2; Streamable HTTP, protocol "
                         r"2026-07-28", moved.stdout), moved.stdout
        old_color, old_commit = serving()
        commit_change(f"{transport}-held-{time.time()}")
        with HeldSession(transport) as held, FreshSessions(transport) as fresh, Load(rate=20) as load:
            rebuilt = inv("rebuild")
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            assert serving()[0] == other(old_color)
            # How it passed its gate is kept with the release: its verifications open so.
            assert sh(f"cat {LOOPCTL_HOME}/releases/{serving()[1]}/mcp-opening").stdout == "modern\n"
            time.sleep(1)
            rolled = inv("rollback")
            assert rolled.returncode == 0, rolled.stdout + rolled.stderr
            time.sleep(1)
        assert held.failures == [] and fresh.failures == [], (held.failures[:3], fresh.failures[:3])
        assert held.calls > 4 and fresh.calls > 2
        assert load.failures == []
        assert serving() == (old_color, old_commit)
