"""Helpers for the end-to-end tests on the sandbox NAS (rig/up.sh): run verbs the way a
user does, generate load through the proxy, hold an SSE stream open, edit the app repo."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
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


def running_api_colors() -> list[str]:
    out = sh("docker ps --filter name=loop-api- --format '{{.Names}}'").stdout.split()
    return sorted(name.removeprefix("loop-api-") for name in out)


def lock_is_free() -> bool:
    return sh(f"flock --shared --nonblock {LOCKFILE} true", check=False).returncode == 0


def file_digests(folder: str) -> str:
    """sha256 of every file under a folder (the OAuth keys and database), to compare byte for byte."""
    return sh(f"cd {folder} && find . -type f | sort | xargs -r sha256sum").stdout


def oauth_digests() -> str:
    """file_digests of the OAuth state where the stack keeps it: the volume once loopctl moved it
    there, else the app's folder."""
    mountpoint = sh(f"docker volume inspect -f '{{{{.Mountpoint}}}}' {OAUTH_VOLUME}", check=False).stdout.strip()
    return file_digests(mountpoint if mountpoint else OAUTH_DIR)


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
    git = ["git", "-C", str(WORKSTATION)]
    subprocess.run([*git, "commit", "-qam", f"test: {label}"], check=True)
    return subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def edited_main(label: str, edit) -> Iterator[str]:
    """Commit an edit of the example app's api/main.py in the workstation clone (yields the short
    commit); afterwards a commit puts the file back as it was."""
    main = WORKSTATION / "api" / "main.py"
    before = main.read_text()
    main.write_text(edit(before))
    try:
        yield commit_all(f"test: {label}")
    finally:
        main.write_text(before)
        commit_all(f"test: {label} undone")


def commit_all(message: str) -> str:
    git = ["git", "-C", str(WORKSTATION)]
    subprocess.run([*git, "commit", "-qam", message], check=True)
    return subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@dataclass
class Load:
    """Steady GET /health through the proxy at `rate` requests a second, each on a new
    connection (as monitors and new clients do), counting every failure."""

    rate: int = 60
    threads: int = 4
    total: int = 0
    failures: list = field(default_factory=list)
    colors: set = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list = field(default_factory=list)

    def _work(self) -> None:
        interval = self.threads / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                status, headers, _ = get("/health", timeout=5)
                error = None if status == 200 else f"HTTP {status}"
            except Exception as exc:  # every kind of failure counts
                error, headers = f"{type(exc).__name__}: {exc}", {}
            with self._lock:
                self.total += 1
                if error:
                    self.failures.append((time.time(), error))
                if headers.get("x-loop-color"):
                    self.colors.add(headers["x-loop-color"])
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()
        self.seconds = time.monotonic() - self.started

    @property
    def per_second(self) -> float:
        return self.total / self.seconds


class SseClient(threading.Thread):
    """Holds GET /mcp (the legacy SSE stream) open and notes when it ends."""

    def __init__(self):
        super().__init__(daemon=True)
        self.endpoint: str | None = None
        self.ended_at: float | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(*PROXY, timeout=120)
        try:
            conn.request("GET", "/mcp", headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            while True:
                line = response.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: /mcp/messages/"):
                    self.endpoint = line[6:].decode().strip()
                    self.connected.set()
        except OSError:
            pass
        finally:
            self.ended_at = time.time()
            conn.close()


def stream_lines(process: subprocess.Popen) -> list[tuple[float, str]]:
    """Read a process's output to the end, stamping each line with the time it arrived."""
    lines = []
    for line in process.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    process.wait()
    return lines


def read_until(process: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """Read a process's output line by line until a line holds `text`; returns the lines read,
    that one last (later lines stay in process.stdout). Fails, after killing the process, when
    the output ends or `timeout` seconds pass without such a line."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in iter(process.stdout.readline, ""):
            lines.append(line.rstrip("\n"))
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found.is_set():
        ended = not reader.is_alive()
        process.kill()
        reader.join(10)
        why = "the output ended" if ended else f"none within {timeout:g}s"
        raise AssertionError(f"no line with {text!r}: {why}; output so far:\n" + "\n".join(lines))
    return lines


def first_time(lines: list[tuple[float, str]], text: str) -> float:
    return next(stamp for stamp, line in lines if text in line)
