"""scripts/lib.sh picks Compose as Synology ships it: the docker CLI's plugin (`docker compose`),
else a standalone docker-compose beside docker (v2 on current DSM), else docker-compose on PATH
(v1 on older DSM); STACK_COMPOSE (stack.env's COMPOSE_VERSION) can force a major version. A
stand-in docker records how it is called; the real v1 and v2 (plugin and standalone) run in
tests/rig."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_lib(tmp_path, docker_script: str, then: str, version: str = "auto",
            standalone: str | None = None) -> subprocess.CompletedProcess:
    """Source lib.sh and lib-deploy.sh in an installed layout whose stack.env points at `docker_script`
    (and a docker-compose script beside it, if `standalone` is given)."""
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    for name in ("lib.sh", "lib-deploy.sh", "contract.env"):
        (home / "scripts" / name).write_text((REPO / "scripts" / name).read_text())
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(docker_script)
    docker.chmod(0o755)
    if standalone is not None:
        (docker.parent / "docker-compose").write_text(standalone)
        (docker.parent / "docker-compose").chmod(0o755)
    (home / "stack.env").write_text(f"DOCKER={docker}\nCOMPOSE_VERSION={version}\nAPP_DIR=/app\n"
                                    f"APP_COMPOSE_FILE=docker-compose.yml\nAPI_SERVICE=loop-api\nKEEP_RELEASES=5\n")
    release = home / "releases" / "0123456789ab"
    release.mkdir(parents=True)
    (release / "stack.json").write_text("{}")
    return subprocess.run(["bash", "-c", f". {home}/scripts/lib.sh && . {home}/scripts/lib-deploy.sh && load_stack_env && need_compose && {then}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CALLS": str(tmp_path / "calls")})


def test_v2_plugin_is_used_with_the_release_definition(tmp_path):
    done = run_lib(tmp_path, '#!/bin/sh\necho "$*" >> "$CALLS"\n[ "$2 $3" = "version --short" ] && echo 2.40.3\nexit 0\n',
                   "PROJECT=loop; compose_release 0123456789ab ps")
    assert done.returncode == 0, done.stderr
    release = tmp_path / "home" / "releases" / "0123456789ab"
    assert (tmp_path / "calls").read_text().splitlines() == [
        "compose version --short", f"compose -p loop --project-directory {release} -f {release}/stack.json ps"]


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
        assert "no Compose v2 found: not '" in done.stderr and "(STACK_COMPOSE=v2)" in done.stderr


NO_PLUGIN = '#!/bin/sh\n[ "$1" = compose ] && exit 1\nexit 0\n'
STANDALONE_V2 = '#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo 2.20.3\n'


@pytest.mark.parametrize("version", ["auto", "v2"])
def test_a_standalone_v2_beside_docker_is_used_where_there_is_no_plugin(tmp_path, version):
    """Current DSM: Container Manager's usr/bin has docker and docker-compose, no CLI plugin."""
    done = run_lib(tmp_path, NO_PLUGIN, "declare -p COMPOSE COMPOSE_MAJOR COMPOSE_FOUND", version, STANDALONE_V2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f'declare -a COMPOSE=([0]="{tmp_path}/bin/docker-compose")',
                                        'declare -- COMPOSE_MAJOR="2"', 'declare -- COMPOSE_FOUND="2.20.3"']


def test_v1_forced_skips_a_standalone_v2(tmp_path):
    done = run_lib(tmp_path, NO_PLUGIN, "declare -p COMPOSE COMPOSE_MAJOR", "v1", STANDALONE_V2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['declare -a COMPOSE=([0]="/usr/bin/docker-compose")', 'declare -- COMPOSE_MAJOR="1"']


def test_a_compose_v1_too_old_is_named_by_setup(tmp_path):
    old = '#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo 1.24.1\n'
    done = run_lib(tmp_path, NO_PLUGIN, f'. <(sed -n "/^tools_fact()/,/^}}/p" {REPO}/scripts/facts.sh) && tools_fact compose',
                   "v1", old)
    assert f"Compose 1.24.1 ({tmp_path}/bin/docker-compose) is older than 1.25, the oldest v1 loopctl works with" \
        in done.stdout, done.stdout + done.stderr


def test_compose_is_picked_only_when_a_script_uses_it(tmp_path):
    """Finding Compose runs it (0.1 s): loading the stack settings alone does not, so a rollback to
    the warm standby and `inv status` never pay for it."""
    docker = '#!/bin/sh\necho "$*" >> "$CALLS"\n[ "$2 $3" = "version --short" ] && echo 2.40.3\nexit 0\n'
    home = tmp_path / "probe"
    home.mkdir()
    done = run_lib(home, docker, "true")
    assert done.returncode == 0, done.stderr
    assert (home / "calls").read_text() == "compose version --short\n"
    lazy = subprocess.run(["bash", "-c", f". {home}/home/scripts/lib.sh && . {home}/home/scripts/lib-deploy.sh && load_stack_env && echo ${{#COMPOSE[@]}}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CALLS": str(home / "calls2")})
    assert (lazy.returncode, lazy.stdout) == (0, "0\n"), lazy.stderr
    assert not (home / "calls2").exists()
