"""Fixtures: real servers on 127.0.0.1, and `inv` run as a subprocess the way cron runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopctl.settings import SETTINGS

from .servers import broken, mcp_apps, tls
from .servers.health_app import Behaviour, health_app
from .servers.receiver import Receiver, receiver_app
from .servers.hostile import hostile_server
from .servers.runner import serve, silent_server

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def line(self) -> str:
        return self.stdout.strip()


@pytest.fixture
def inv(tmp_path):
    """Run `python -m invoke VERB ...` from the repo root with only the settings a test gives.

    Every setting is removed from the environment and LOOP_ENV_FILE points at /dev/null,
    so a developer's own .env or exported variables cannot leak in; the state file lives
    in the test's temporary directory.
    """
    base_env = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in SETTINGS}}
    base_env.update(LOOP_ENV_FILE=os.devnull, HEALTH_STATE_FILE=str(tmp_path / "state.json"),
                    CHECK_TIMEOUT="2", CHECK_RETRIES="0")

    def run(*args: str, **settings: str) -> Run:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={**base_env, **settings})
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    return run


def _served(build):
    """A session-wide fixture serving `build` and yielding its base URL."""

    @pytest.fixture(scope="session")
    def base_url():
        with serve(build) as base:
            yield base

    return base_url


sse_server = _served(mcp_apps.production_sse_app)
streamable_server = _served(mcp_apps.streamable_app)
stateless_server = _served(mcp_apps.stateless_app)
modern_only_server = _served(mcp_apps.modern_only_app)
handshake_server = _served(mcp_apps.handshake_only_app)
declines_modern_server = _served(mcp_apps.declines_modern_app)
header_dropping_server = _served(mcp_apps.method_header_dropping_proxy_app)
oauth_server = _served(mcp_apps.oauth_app)
oauth_without_registration_server = _served(mcp_apps.oauth_without_registration_app)
failing_tools_server = _served(mcp_apps.failing_tools_app)
broken_server = _served(broken.broken_app)


@pytest.fixture(scope="session")
def hostile():
    """The hostile HTTP servers of servers/hostile.py, one path each."""
    with hostile_server() as base:
        yield base


@pytest.fixture(scope="session")
def hung_server():
    with silent_server() as base:
        yield base


def _stateful(name: str, make_state, app_for):
    """One session-wide server whose state a test may change, reset before every test.

    The fixture `name` gives (base URL, state); the server reads the same state object.
    """

    @pytest.fixture(scope="session", name=f"_{name}_session")
    def session_server():
        state = make_state()
        with serve(app_for(state)) as base:
            yield base, state

    @pytest.fixture(name=name)
    def per_test(request):
        base, state = request.getfixturevalue(f"_{name}_session")
        state.__init__()
        return base, state

    return session_server, per_test


_health_session, health_server = _stateful("health_server", Behaviour, health_app)
_receiver_session, receiver = _stateful("receiver", Receiver, receiver_app)


def _tls_health(name: str, days: float, *, trusted: bool):
    """A session-wide HTTPS health server whose certificate expires in `days`; gives (base URL, CA file)."""

    @pytest.fixture(scope="session", name=name)
    def tls_server(tmp_path_factory):
        directory = tmp_path_factory.mktemp(name)
        if trusted:
            ca, cert, key = tls.issue(directory, name, days)
        else:
            (cert, key), ca = tls.self_signed(directory, name, days), ""
        with serve(health_app(Behaviour()), certfile=cert, keyfile=key) as base:
            yield base, ca

    return tls_server


tls_fresh = _tls_health("tls_fresh", 90.5, trusted=True)
tls_expiring = _tls_health("tls_expiring", 10.5, trusted=True)
tls_nearly_expired = _tls_health("tls_nearly_expired", 1.5, trusted=True)
tls_self_signed = _tls_health("tls_self_signed", 90.5, trusted=False)
