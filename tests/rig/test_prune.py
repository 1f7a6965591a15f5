"""Pruning after a deploy deletes a release definition (releases/SHORT/) only when Docker says
its image does not exist. A daemon that does not answer once must not erase the live and every
kept definition (rollback needs them). Run on the sandbox with the real Docker CLI and daemon,
from a scratch copy of the installed loopctl home (lib.sh takes the home from where the
scripts are), so the real home is never touched."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from rig.sandbox import LOOPCTL_HOME, serving, sh

DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"
SCRATCH_PARENT = Path("/srv/loop-rig")
# 12 hex digits, as a release's short commit: no such commit is ever deployed.
GONE = "0badc0ffee00"


@pytest.fixture
def scratch(deployed):
    """A root-owned copy of the installed home: its scripts, stack.env, release history and
    every release definition."""
    home = Path(tempfile.mkdtemp(prefix="prune-", dir=SCRATCH_PARENT))
    try:
        home.chmod(0o755)
        shutil.copytree(f"{LOOPCTL_HOME}/scripts", home / "scripts", symlinks=True)
        shutil.copy2(f"{LOOPCTL_HOME}/stack.env", home / "stack.env")
        (home / "state").mkdir()
        (home / "state").chmod(0o755)
        shutil.copy2(f"{LOOPCTL_HOME}/state/releases.tsv", home / "state" / "releases.tsv")
        shutil.copytree(f"{LOOPCTL_HOME}/releases", home / "releases", symlinks=True)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def definitions(home: Path) -> dict[str, str]:
    """Every release folder, with a digest of what it holds."""
    found = {}
    for folder in sorted((home / "releases").iterdir()):
        digest = hashlib.sha256()
        for file in sorted(folder.rglob("*")):
            digest.update(file.name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
        found[folder.name] = digest.hexdigest()
    return found


def release_field(home: Path, short: str, name: str) -> str:
    lines = (home / "releases" / short / "release.env").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{name}="))


def image_exists(image: str) -> bool:
    return sh(f"{DOCKER} image inspect {image} >/dev/null 2>&1", check=False).returncode == 0


def add_definition(home: Path, short: str, like: str) -> None:
    """A definition for `short`: the live one's files under another commit's name."""
    shutil.copytree(home / "releases" / like, home / "releases" / short, symlinks=True)
    env = home / "releases" / short / "release.env"
    env.write_text(env.read_text().replace(f"SHORT={like}", f"SHORT={short}"))


def prune(home: Path, short: str, docker_host: str | None = None) -> subprocess.CompletedProcess:
    """prune_releases as the deploy runs it: the scratch copy's scripts sourced, stack.env and
    the live release loaded; DOCKER_HOST set (for the Docker CLI only) just before."""
    script = "\n".join([
        "set -Eeuo pipefail",
        f". {home}/scripts/lib.sh",
        f". {home}/scripts/lib-deploy.sh",
        'echo "home $LOOPCTL_HOME"',
        "load_stack_env",
        f"load_release {short}",
        f"export DOCKER_HOST=unix://{docker_host}" if docker_host else ":",
        "rc=0",
        "prune_releases || rc=$?",
        'echo "prune_releases exit $rc"',
    ])
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    assert f"home {home}\n" in result.stdout, result.stdout + result.stderr
    return result


def test_a_daemon_that_does_not_answer_leaves_every_definition(scratch):
    _, live = serving()
    repo = release_field(scratch, live, "API_REPO")
    assert not image_exists(f"{repo}:{GONE}")
    add_definition(scratch, GONE, live)
    before = definitions(scratch)
    images = sh(f"{DOCKER} image ls {repo} --format '{{{{.Tag}}}} {{{{.ID}}}}'").stdout
    # A socket no daemon listens on: bound, never listening, so connecting is refused.
    dead = scratch / "no-daemon.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))
    listener.close()

    result = prune(scratch, live, docker_host=str(dead))

    output = result.stdout + result.stderr
    # All of them, the live one and even the one whose image is gone (nobody could tell).
    assert definitions(scratch) == before, output
    assert live in before and GONE in before
    # Said so, and pruning counts as failed (the deploy warns).
    assert "Cannot connect to the Docker daemon" in result.stderr, output
    assert "could not list the" in result.stderr and "none was removed" in result.stderr, output
    assert "kept the definitions of" in result.stderr, output
    assert "prune_releases exit 1" in result.stdout, output
    assert sh(f"{DOCKER} image ls {repo} --format '{{{{.Tag}}}} {{{{.ID}}}}'").stdout == images


def test_a_definition_whose_image_was_removed_goes_and_the_kept_ones_stay(scratch):
    _, live = serving()
    repo = release_field(scratch, live, "API_REPO")
    # A release whose image really existed and was really removed (only the tag: the live
    # image it pointed at stays).
    sh(f"{DOCKER} image tag {repo}:{live} {repo}:{GONE}")
    add_definition(scratch, GONE, live)
    sh(f"{DOCKER} image rm {repo}:{GONE}")
    assert not image_exists(f"{repo}:{GONE}") and image_exists(f"{repo}:{live}")
    before = definitions(scratch)
    kept = {short for short in before if short != GONE and image_exists(f"{repo}:{short}")}
    assert live in kept

    result = prune(scratch, live)

    output = result.stdout + result.stderr
    assert "prune_releases exit 0" in result.stdout, output
    after = definitions(scratch)
    assert GONE not in after, output
    assert {short: after.get(short) for short in kept} == {short: before[short] for short in kept}, output
    assert image_exists(f"{repo}:{live}")
