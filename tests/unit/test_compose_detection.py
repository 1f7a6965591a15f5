"""scripts/lib.sh picks Compose v2 (`docker compose`, the NAS) when the docker binary has it,
else v1 (`docker-compose`, this machine). Compose v2 cannot be installed here, so the v2 branch
is checked with a stand-in docker that records how it is called."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_lib(tmp_path, docker_script: str, then: str) -> str:
    """Source lib.sh in an installed layout whose stack.env points at `docker_script`."""
    home = tmp_path / "app" / ".loopctl"
    (home / "scripts").mkdir(parents=True)
    (home / "scripts" / "lib.sh").write_text((REPO / "scripts" / "lib.sh").read_text())
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(docker_script)
    docker.chmod(0o755)
    (home / "stack.env").write_text(f"DOCKER={docker}\n")
    done = subprocess.run(["bash", "-c", f". {home}/scripts/lib.sh && load_stack_env && {then}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CALLS": str(tmp_path / "calls")})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_v2_plugin_is_used_with_the_same_flags(tmp_path):
    run_lib(tmp_path, '#!/bin/sh\necho "$*" >> "$CALLS"\n', "compose ps")
    home = tmp_path / "app" / ".loopctl"
    assert (tmp_path / "calls").read_text().splitlines() == [
        "compose version", f"compose --env-file {home}/stack.env -p loop -f {home}/deploy/docker-compose.yml ps"]


def test_v1_is_the_fallback_when_docker_has_no_compose_plugin(tmp_path):
    out = run_lib(tmp_path, '#!/bin/sh\n[ "$1" = compose ] && exit 1\nexit 0\n', "declare -p COMPOSE")
    assert out.strip() == 'declare -a COMPOSE=([0]="docker-compose")'
