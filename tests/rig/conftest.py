"""Fixtures for the end-to-end tests: the sandbox NAS, and a deployed stack on it."""

from __future__ import annotations

import subprocess

import pytest

from rig.sandbox import REPO, inv, serving, sh
from .support import lock_is_free


@pytest.fixture(scope="session")
def rig():
    """Start (or reuse) the sandbox NAS: sshd, users, dockerd, base image, repositories."""
    done = subprocess.run(["bash", str(REPO / "rig" / "up.sh")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def deployed(rig):
    """A stack with installed scripts, a live color serving and a free lock."""
    result = inv("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        serving()
    except (AssertionError, OSError, KeyError):
        result = inv("rebuild")
        assert result.returncode == 0, result.stdout + result.stderr
    assert lock_is_free()
    yield
    assert lock_is_free(), "a test left the deploy lock held"


def running(name: str) -> bool:
    return sh(f"docker inspect -f '{{{{.State.Running}}}}' {name}", check=False).stdout.strip() == "true"
