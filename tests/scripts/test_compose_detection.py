"""scripts/lib.sh picks Compose: v2 (`docker compose`, what Synology ships) when the docker binary
has it, else v1 (`docker-compose`); STACK_COMPOSE (stack.env's COMPOSE_VERSION) can force either.
A stand-in docker records how it is called; the real v1 and v2 run in tests/rig."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_lib(tmp_path, docker_script: str, then: str, version: str = "auto") -> subprocess.CompletedProcess:
    """Source lib-deploy.sh in an installed layout whose stack.env points at `docker_script`."""
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    for name in ("lib.sh", "lib-deploy.sh", "contract.env"):
        (home / "scripts" / name).write_text((REPO / "scripts" / name).read_text())
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(docker_script)
    docker.chmod(0o755)
    (home / "stack.env").write_text(f"DOCKER={docker}\nCOMPOSE_VERSION={version}\nAPP_DIR=/app\n"
                                    f"APP_COMPOSE_FILE=docker-compose.yml\nAPI_SERVICE=loop-api\nKEEP_RELEASES=5\n")
    release = home / "releases" / "0123456789ab"
    release.mkdir(parents=True)
    (release / "stack.json").write_text("{}")
    return subprocess.run(["bash", "-c", f". {home}/scripts/lib-deploy.sh && load_stack_env && {then}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CALLS": str(tmp_path / "calls")})


def test_v2_plugin_is_used_with_the_release_definition(tmp_path):
    done = run_lib(tmp_path, '#!/bin/sh\necho "$*" >> "$CALLS"\n', "PROJECT=loop; compose_release 0123456789ab ps")
    assert done.returncode == 0, done.stderr
    release = tmp_path / "home" / "releases" / "0123456789ab"
    assert (tmp_path / "calls").read_text().splitlines() == [
        "compose version", f"compose -p loop --project-directory {release} -f {release}/stack.json ps"]


def test_v1_is_the_fallback_when_docker_has_no_compose_plugin(tmp_path):
    done = run_lib(tmp_path, '#!/bin/sh\n[ "$1" = compose ] && exit 1\nexit 0\n', "declare -p COMPOSE COMPOSE_MAJOR")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['declare -a COMPOSE=([0]="/usr/bin/docker-compose")', 'declare -- COMPOSE_MAJOR="1"']


@pytest.mark.parametrize("version, expected", [("v1", "/usr/bin/docker-compose"), ("v2", None)])
def test_stack_compose_forces_a_version(tmp_path, version, expected):
    done = run_lib(tmp_path, '#!/bin/sh\n[ "$1" = compose ] && exit 1\nexit 0\n', "echo ${COMPOSE[0]}", version)
    if expected:
        assert done.returncode == 0 and done.stdout.strip() == expected
    else:
        assert done.returncode == 64
        assert "(Compose v2) is not available (STACK_COMPOSE=v2)" in done.stderr
