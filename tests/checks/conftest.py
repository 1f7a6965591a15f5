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
    base_env = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    base_env.update(LOOP_ENV_FILE=os.devnull, HEALTH_STATE_FILE=str(tmp_path / "state.json"),
                    CHECK_TIMEOUT="2", CHECK_RETRIES="0")

    def run(*args: str, **settings: str) -> Run:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={**base_env, **settings})
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    return run


@pytest.fixture(scope="session")
def sse_server():
    with serve(mcp_apps.production_sse_app) as base:
        yield base


@pytest.fixture(scope="session")
def streamable_server():
    with serve(mcp_apps.streamable_app) as base:
        yield base


@pytest.fixture(scope="session")
def handshake_server():
    with serve(mcp_apps.handshake_only_app) as base:
        yield base


@pytest.fixture(scope="session")
def header_dropping_server():
    with serve(mcp_apps.method_header_dropping_proxy_app) as base:
        yield base


@pytest.fixture(scope="session")
def oauth_server():
    with serve(mcp_apps.oauth_app) as base:
        yield base


@pytest.fixture(scope="session")
def oauth_without_registration_server():
    with serve(mcp_apps.oauth_without_registration_app) as base:
        yield base


@pytest.fixture(scope="session")
def failing_tools_server():
    with serve(mcp_apps.failing_tools_app) as base:
        yield base


@pytest.fixture(scope="session")
def broken_server():
    with serve(broken.broken_app) as base:
        yield base


@pytest.fixture(scope="session")
def hung_server():
    with silent_server() as base:
        yield base


@pytest.fixture(scope="session")
def _health_behaviour():
    return Behaviour()


@pytest.fixture(scope="session")
def _health_base(_health_behaviour):
    with serve(health_app(_health_behaviour)) as base:
        yield base


@pytest.fixture
def health_server(_health_base, _health_behaviour):
    """(base URL, behaviour); the behaviour is reset for every test."""
    _health_behaviour.__init__()
    return _health_base, _health_behaviour


@pytest.fixture(scope="session")
def _receiver():
    return Receiver()


@pytest.fixture(scope="session")
def _receiver_base(_receiver):
    with serve(receiver_app(_receiver)) as base:
        yield base


@pytest.fixture
def receiver(_receiver_base, _receiver):
    """(base URL, receiver) with nothing received yet."""
    _receiver.__init__()
    return _receiver_base, _receiver


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    return tmp_path_factory.mktemp("tls")


def _tls_health(directory: Path, name: str, days: float, *, trusted: bool):
    if trusted:
        ca, cert, key = tls.issue(directory, name, days)
    else:
        (cert, key), ca = tls.self_signed(directory, name, days), ""
    with serve(health_app(Behaviour()), certfile=cert, keyfile=key) as base:
        yield base, ca


@pytest.fixture(scope="session")
def tls_fresh(certificates):
    yield from _tls_health(certificates, "fresh", 90.5, trusted=True)


@pytest.fixture(scope="session")
def tls_expiring(certificates):
    yield from _tls_health(certificates, "expiring", 10.5, trusted=True)


@pytest.fixture(scope="session")
def tls_nearly_expired(certificates):
    yield from _tls_health(certificates, "nearly-expired", 1.5, trusted=True)


@pytest.fixture(scope="session")
def tls_self_signed(certificates):
    yield from _tls_health(certificates, "self-signed", 90.5, trusted=False)
