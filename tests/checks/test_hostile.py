"""The checks against servers that misbehave on purpose: every run ends by CHECK_DEADLINE, holds
a few MiB whatever the server sends, says CRITICAL (not UNKNOWN), and prints none of the
server's control characters. Each check runs as cron runs it, in its own process, whose
wall time and peak memory (its own high-water RSS, sampled from /proc) are measured.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopctl.settings import SETTINGS

from .conftest import REPO, Run
from .servers import tls
from .servers.hostile import recording_proxy

DEADLINE = 2.0
SLACK = 1.5  # interpreter start-up and imports
MEMORY_SLACK_MIB = 16  # above what a run against a quick, well-behaved refusal holds
ADDRESS_SPACE = 2 << 30  # a runaway child fails with MemoryError instead of eating the machine
CONTROL = [chr(c) for c in (*range(0, 9), *range(11, 32), *range(0x7f, 0xa0))]


@dataclass
class Measured(Run):
    """A run, and the most memory it held."""

    peak_mib: float


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _peak_mib(pid: int) -> float | None:
    """The process's own high-water RSS once it runs invoke (VmHWM belongs to the address space
    exec made; ru_maxrss would also count the pytest process it was forked from)."""
    try:
        if b"invoke" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def run_measured(args: tuple[str, ...], env: dict[str, str], hard_limit: float = 60) -> Measured:
    """Run `python -m invoke ARGS`, sampling its peak memory every 10 ms until it ends."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, env=env, preexec_fn=_limit_memory)
        peak = 0.0
        while True:
            peak = max(peak, _peak_mib(child.pid) or 0.0)
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > hard_limit:
                os.kill(child.pid, signal.SIGKILL)
            time.sleep(0.01)
        seconds = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(child.returncode, out.read().decode(), err.read().decode(), seconds, peak)


def _check_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {setting.name for setting in SETTINGS} and not k.lower().endswith("_proxy")}
    env.update(LOOP_ENV_FILE=os.devnull, HEALTH_STATE_FILE=str(tmp_path / "state.json"),
               CHECK_TIMEOUT="5", CHECK_DEADLINE=str(DEADLINE), CHECK_RETRIES="0")
    return env


@pytest.fixture
def measured(tmp_path):
    """Run `python -m invoke ARGS` with only the given settings; wall time and peak memory."""
    base_env = _check_env(tmp_path)

    def run(*args: str, **settings: str) -> Measured:
        return run_measured(args, {**base_env, **settings})

    return run


@pytest.fixture(scope="module")
def baseline_mib(hostile, tmp_path_factory):
    """Peak memory of a check that a server turns down at once (404 everywhere): the floor."""
    env = _check_env(tmp_path_factory.mktemp("baseline"))
    runs = [run_measured(("mcp-check", "--url", f"{hostile}/nothing"), env),
            run_measured(("health", "--no-alert", "--url", f"{hostile}/nothing"), env)]
    assert [run.code for run in runs] == [2, 2], runs
    assert all(run.peak_mib > 0 for run in runs), runs
    return max(run.peak_mib for run in runs)


def _bounded(run: Measured, baseline: float, *, seconds: float = DEADLINE) -> None:
    assert run.seconds <= seconds + SLACK, f"{run.seconds:.1f} s: {run}"
    assert run.peak_mib <= baseline + MEMORY_SLACK_MIB, f"{run.peak_mib:.0f} MiB (floor {baseline:.0f}): {run}"
    assert "Traceback" not in run.stderr


MCP_CASES = [
    ("endless-events", "server/discover: answer larger than 1 MiB"),
    ("get-endless-events", "GET /get-endless-events/mcp: no endpoint event on the SSE stream (answer larger than 1 MiB)"),
    ("endless-line", "server/discover: answer larger than 1 MiB"),
    ("get-endless-line", "no endpoint event on the SSE stream (answer larger than 1 MiB)"),
    ("get-endless-data", "no endpoint event on the SSE stream (answer larger than 1 MiB)"),
    ("huge-body", "answer larger than 1 MiB"),
    ("gzip-bomb", "answer larger than 1 MiB"),
    ("deep-json", "POST /deep-json/mcp: HTTP 200 (application/json '[[[["),
    ("huge-headers", "malformed HTTP answer"),
    ("endless-header-line", "malformed HTTP answer"),
    ("drip", "server/discover: no answer within"),
    ("get-drip-body", "no endpoint event on the SSE stream (no answer within"),
]


HEALTH_CASES = [
    ("endless-events", "/endless-events/health: answer larger than 1 MiB"),
    ("endless-line", "/endless-line/health: answer larger than 1 MiB"),
    ("huge-body", "/huge-body/health: answer larger than 1 MiB"),
    ("gzip-bomb", "/gzip-bomb/health: answer larger than 1 MiB"),
    ("deep-json", "/deep-json/health: HTTP 200 but the body is not JSON"),
    ("huge-headers", "/huge-headers/health: malformed HTTP answer"),
    ("endless-header-line", "/endless-header-line/health: malformed HTTP answer"),
    ("drip", "/drip/health: no answer within"),
    ("drip-body", "/drip-body/health: no answer within"),
]
# How each check is run against a hostile URL, and how its CRITICAL line begins.
CHECKS = {"mcp-check": (("mcp-check",), {}, "LOOP MCP CRITICAL - "),
          "health": (("health", "--no-alert"), {"CHECK_RETRIES": "3"}, "LOOP CRITICAL - ")}
CASES = [("mcp-check", name, words) for name, words in MCP_CASES] + [
    ("health", name, words) for name, words in HEALTH_CASES]


@pytest.mark.parametrize("check, name, words", CASES, ids=[f"{check}-{name}" for check, name, _ in CASES])
def test_a_check_ends_by_its_deadline_in_bounded_memory(measured, hostile, baseline_mib, check, name, words):
    args, settings, critical = CHECKS[check]
    run = measured(*args, "--url", f"{hostile}/{name}", **settings)
    assert run.code == 2, run
    assert run.line.startswith(critical) and words in run.line, run.line
    _bounded(run, baseline_mib)


@pytest.mark.parametrize("name", ["endless-events", "huge-body", "gzip-bomb", "huge-headers", "drip", "drip-body"])
def test_alert_delivery_is_bounded_too(measured, hostile, baseline_mib, name):
    """A webhook and ping that answer without end: each delivery within CHECK_TIMEOUT, and the
    verdict is untouched (the webhook is tried again on the next run)."""
    down = socket.socket()
    down.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    try:
        run = measured("health", "--url", f"http://127.0.0.1:{down.getsockname()[1]}", CHECK_TIMEOUT="1",
                       ALERT_WEBHOOK_URL=f"{hostile}/{name}/hook/T0KEN", HEALTHCHECK_PING_URL=f"{hostile}/{name}/ping")
    finally:
        down.close()
    assert run.code == 2 and "connection refused" in run.line, run
    assert "T0KEN" not in run.stdout + run.stderr
    _bounded(run, baseline_mib, seconds=2 * 1.0)  # the check itself is instant here; two deliveries


def test_certificate_check_that_drips_ends_by_the_deadline(measured, tmp_path, baseline_mib):
    """/health answers over TLS; the certificate check's own connection then gets a TLS record
    a byte a second, which restarts every per-read timeout."""
    ca, cert, key = tls.issue(tmp_path, "drip", 90)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        first = True
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                if first:
                    first = False
                    with context.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.recv(65536)
                        body = b'{"status": "ok"}'
                        tls_conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    continue
                conn.recv(65536)
                for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 60:
                    if stop.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(1)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        run = measured("health", "--no-alert", "--url", f"https://127.0.0.1:{listener.getsockname()[1]}",
                       CHECK_CA_BUNDLE=ca)
    finally:
        stop.set()
        thread.join(3)
        listener.close()
    assert run.code == 2, run
    assert run.line.startswith("LOOP CRITICAL - certificate check: no answer within"), run.line
    _bounded(run, baseline_mib)


def _has_control(text: str) -> bool:
    return any(c in text for c in CONTROL)


def test_escape_sequences_from_a_page_title_never_reach_the_terminal(measured, hostile):
    for args in (("health", "--no-alert"), ("mcp-check",)):
        for as_json in ((), ("--json",)):
            run = measured(*args, *as_json, "--url", f"{hostile}/escapes")
            assert run.code == 2, run
            assert "Red" in run.stdout and "owned" not in run.stdout, run.stdout
            assert not _has_control(run.stdout.replace("\n", "")), repr(run.stdout)
            if as_json:
                assert not _has_control(json.dumps(json.loads(run.stdout), ensure_ascii=False).replace("\n", ""))


def test_escape_sequences_in_server_info_never_reach_the_terminal(measured, hostile):
    run = measured("mcp-check", "--url", f"{hostile}/escaped-server")
    assert run.code == 0, run
    assert 'server "evil" 1' in run.line and not _has_control(run.stdout), repr(run.line)
    run = measured("mcp-check", "--json", "--url", f"{hostile}/escaped-server")
    report = json.loads(run.stdout)
    assert report["server_name"] == "evil" and report["server_version"] == "1", report
    assert not _has_control(json.dumps(report, ensure_ascii=False))


def test_token_is_not_sent_in_clear_text_to_another_host(measured):
    """http:// to a host that is not this machine: anyone on the way reads the token. A proxy
    on loopback stands for the way; it must see nothing unless that is allowed."""
    with recording_proxy() as (proxy, seen):
        run = measured("mcp-check", "--url", "http://mcp.example.com", MCP_TOKEN="tok-sekrit-123",
                       HTTP_PROXY=proxy, http_proxy=proxy, NO_PROXY="", no_proxy="")
        assert run.code == 3, run
        assert run.line == ("LOOP MCP UNKNOWN - MCP_TOKEN would be sent in clear text to http://mcp.example.com: "
                            "use https, or set ALLOW_INSECURE_TOKEN=1 to send it anyway"), run.line
        assert seen == []
        allowed = measured("mcp-check", "--url", "http://mcp.example.com", MCP_TOKEN="tok-sekrit-123",
                           ALLOW_INSECURE_TOKEN="1", HTTP_PROXY=proxy, http_proxy=proxy, NO_PROXY="", no_proxy="")
        assert allowed.code == 2, allowed
        assert any(b"Bearer tok-sekrit-123" in request for request in seen)
        assert "tok-sekrit-123" not in allowed.stdout + allowed.stderr


def test_credentials_in_public_url_are_redacted_everywhere(measured, health_server, receiver, tmp_path):
    base, behaviour = health_server
    hook_base, got = receiver
    behaviour.mode = "down"
    public = base.replace("http://", "http://monitor:Pa55-in-url@")
    run = measured("health", "--json", PUBLIC_URL=public, ALERT_WEBHOOK_URL=f"{hook_base}/hook")
    assert run.code == 2, run
    report = json.loads(run.stdout)
    assert report["url"] == base.replace("http://", "http://<redacted>@") + "/health"
    assert len(got.received) == 1
    assert "Pa55-in-url" not in run.stdout + run.stderr + got.received[0].body
    assert json.loads(got.received[0].body)["url"] == base.replace("http://", "http://<redacted>@")
    assert "Pa55-in-url" not in (tmp_path / "state.json").read_text()
    config = measured("config", PUBLIC_URL=public)
    assert config.code == 0, config
    assert "Pa55-in-url" not in config.stdout + config.stderr
    assert "http://<redacted>@127.0.0.1" in config.stdout
