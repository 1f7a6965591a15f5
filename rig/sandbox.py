"""The sandbox NAS (rig/up.sh) from this machine: where it keeps things, and the few ways to
drive it that the end-to-end tests (tests/rig) and the benchmark (bench/bench.py) share: run a
verb as a user does, ask the proxy, reset the NAS to before loopctl, commit a change to the app.

Why here and not in tests/: the benchmark is no test, and it must not depend on the test suite's
layout. Defined once, for both: the sandbox's paths are production's (rig/up.sh lays them out)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RIG_STATE = Path(os.environ.get("RIG_STATE", "/var/lib/loop-rig"))
NAS_ENV = RIG_STATE / "nas.env"
NASBOT_ENV = RIG_STATE / "nasbot.env"
# Production's paths: the rig lays the sandbox NAS out the same way (rig/up.sh).
APP_DIR = "/volume1/LOOP_CORE/vault/LOOP"
LOOPCTL_HOME = "/volume1/@loopctl"
OAUTH_DIR = f"{APP_DIR}/api/oauth"
# Where loopctl's stack keeps the OAuth state: a named volume, filled from OAUTH_DIR once.
OAUTH_VOLUME = "loop-oauth"
LOCKFILE = f"{LOOPCTL_HOME}/state/lock/deploy.lock"
WORKSTATION = RIG_STATE / "workstation" / "loop-app"
PROXY = ("127.0.0.1", 8082)
# Which Compose the NAS scripts use in this run: test.sh runs the deploy tests under each.
COMPOSE = os.environ.get("LOOP_TEST_COMPOSE", "v2")
# How the app's own `compose up` is run as root, by that Compose: v2 as the docker CLI's plugin,
# or the standalone docker-compose beside Synology's docker where the rig has no plugin
# (rig/compose.sh standalone-VERSION); v1 is Debian's.
SYNOLOGY_COMPOSE = "/var/packages/ContainerManager/target/usr/bin/docker-compose"
V2_CLI = SYNOLOGY_COMPOSE if Path(SYNOLOGY_COMPOSE).exists() else "docker compose"
COMPOSE_CLI = {"v1": "/usr/bin/docker-compose", "v2": V2_CLI}[COMPOSE]


def sudo_password() -> str:
    return (RIG_STATE / "sudo-password").read_text()


def inv_env(env_file: Path, extra: dict | None) -> dict:
    """This process's environment without any loopctl setting, plus the sandbox's settings file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NAS_", "STACK_", "DEPLOY_"))}
    return {**clean, "LOOP_ENV_FILE": str(env_file), "PYTHONUNBUFFERED": "1", "STACK_COMPOSE": COMPOSE,
            **(extra or {})}


def inv(*args: str, env_file: Path = NAS_ENV, env: dict | None = None, timeout: float = 300,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `inv ARGS` as a user would: a new process, no terminal, settings from env_file."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, env=inv_env(env_file, env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def inv_process(*args: str, env_file: Path = NAS_ENV, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=REPO, env=inv_env(env_file, env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sh(command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=check)


def get(path: str, timeout: float = 3) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(*PROXY, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def serving() -> tuple[str, str]:
    """(color, commit) answering through the proxy right now."""
    status, headers, body = get("/health")
    assert status == 200, (status, body)
    return headers["x-loop-color"], json.loads(body)["commit"]


def reset_nas() -> None:
    """An empty NAS: no LOOP containers, no loopctl home, no OAuth volume (the app checkout and
    its OAuth keys stay)."""
    sh("docker rm -f loop-proxy loop-api-blue loop-api-green loop-auth loop-api >/dev/null 2>&1; "
       f"docker network rm loop_default >/dev/null 2>&1; docker volume rm {OAUTH_VOLUME} >/dev/null 2>&1; "
       f"rm -rf {LOOPCTL_HOME}", check=False)


def app_compose_up() -> None:
    """Production before loopctl: the app's own compose file, run in the checkout as root."""
    sh(f"cd {APP_DIR} && {COMPOSE_CLI} up -d --build 2>&1")


def commit_change(label: str, *, health_status: int = 200) -> str:
    """Commit a change to the example app in the workstation clone; returns the short commit.
    health_status != 200 makes the new version's /health fail (a broken release)."""
    main = WORKSTATION / "api" / "main.py"
    text = main.read_text()
    marker = "# release: "
    lines = [line for line in text.splitlines() if not line.startswith(marker) and "BROKEN_HEALTH" not in line]
    lines.append(f"{marker}{label}")
    if health_status != 200:
        lines.append(f"app.router.routes.insert(0, __import__('fastapi').routing.APIRoute('/health', "
                     f"lambda: __import__('fastapi').Response(status_code={health_status})))  # BROKEN_HEALTH")
    main.write_text("\n".join(lines) + "\n")
    return commit_all(f"test: {label}")


def commit_all(message: str) -> str:
    git = ["git", "-C", str(WORKSTATION)]
    subprocess.run([*git, "commit", "-qam", message], check=True)
    return subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
