"""The warm standby as the live color's fallback, and deploys that change only what they
deploy, on the sandbox under load: the live api container crashing or removed by hand costs no
request (the proxy sends what the live color cannot take to the standby), `inv status` and
`inv health` say the standby serves, and the next rebuild takes the place of the color that is
down. A refused release leaves every container and image as it was; the app's other services
(loop-auth) change only after the gate, and are put back when the deploy is cut short after
that. A wrapper on the NAS that dies while its deploy runs is reported as not finished."""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.clients import FreshSessions
from rig.load import Load
from rig.sandbox import LOOPCTL_HOME, commit_change, inv, inv_process, serving, sh
from .support import edited_main, lock_is_free, read_until, running_api_colors

FAST = {"DEPLOY_VERIFY_SECONDS": "3"}
JOURNAL = f"{LOOPCTL_HOME}/state/journal"
BROKEN_MCP = ("app.router.routes.insert(0, __import__('fastapi').routing.APIRoute('/mcp', lambda: "
              "__import__('fastapi').Response(status_code=404), methods=['GET', 'POST']))\n")


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def inspect(name: str, fmt: str) -> str:
    return sh(f"docker inspect -f '{fmt}' {name}", check=False).stdout.strip()


def image_of(color: str) -> str:
    return inspect(f"loop-api-{color}", "{{.Config.Image}}")


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"waited {seconds}s for {what}"
        time.sleep(0.2)


def healthy(name: str) -> bool:
    return inspect(name, "{{.State.Health.Status}}") == "healthy"


@dataclass
class AuthLoad:
    """GET /health of loop-auth on its own port (8084) every 20 ms: how long it was unreachable."""

    failures: list = field(default_factory=list)
    total: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", 8084, timeout=2)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            self.total += 1
            if not ok:
                self.failures.append(time.time())
            time.sleep(0.02)

    @property
    def window(self) -> float:
        return max(self.failures) - min(self.failures) if self.failures else 0.0

    def __enter__(self) -> "AuthLoad":
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def stack_snapshot() -> dict:
    """Every container of the stack (name: id, image id, state) and every image (tag: id)."""
    containers = sh("docker ps -a --filter label=com.docker.compose.project=loop --format '{{.Names}}'").stdout.split()
    state = {name: inspect(name, "{{.Id}} {{.Image}} {{.State.Status}}") for name in sorted(containers)}
    listed = [line.split() for line in
              sh("docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'").stdout.splitlines()]
    return {"containers": state, "images": {tag: image for tag, image in listed if tag != "<none>:<none>"},
            "image ids": sorted({image for _, image in listed})}


def assert_no_request_failed_but_one_in_flight(load: Load, when: float) -> None:
    """0 failed requests, but for an answer the killed process was writing at that instant (its
    headers sent, its body not): at most one a load thread, within two seconds of the kill."""
    cut = load.cut_short(when)
    assert [failure for failure in load.failures if failure not in cut] == [], load.failures[:5]
    assert len(cut) <= load.threads, cut


def assert_only_the_session_in_flight_ended(fresh: FreshSessions, when: float) -> None:
    """A legacy HTTP+SSE session lives in the memory of the process that made it: the one open
    on the live container when it dies ends with it. Every session opened after that works."""
    assert len(fresh.failures) <= 1, fresh.failures[:3]
    assert all(at < when + 1 for at, _ in fresh.failures), fresh.failures
    assert fresh.calls > len(fresh.failures)


@pytest.fixture
def warm(deployed) -> tuple[str, str, str, str]:
    """(live color, its commit, standby color, its commit): a release older than the live one
    kept warm, both healthy."""
    if len(running_api_colors()) < 2 or image_of("blue") == image_of("green"):
        commit_change(f"warm-{time.time()}")
        assert inv("rebuild", env=FAST).returncode == 0
    live, commit = serving()
    wait_for(lambda: healthy(f"loop-api-{other(live)}"), 60, "the standby to be healthy")
    return live, commit, other(live), image_of(other(live)).rsplit(":", 1)[1]


def test_the_live_container_crashing_is_served_by_the_standby_while_it_restarts(warm):
    live, commit, standby, _ = warm
    pid = inspect(f"loop-api-{live}", "{{.State.Pid}}")
    with Load(rate=20) as load, FreshSessions("sse") as fresh:
        crashed = time.time()
        sh(f"kill -KILL {pid}")  # its PID 1 dies, as on a crash; the restart policy brings it back
        wait_for(lambda: inspect(f"loop-api-{live}", "{{.State.Pid}}") not in ("", pid), 30, "the restart")
        wait_for(lambda: healthy(f"loop-api-{live}"), 60, "the live color to be healthy again")
        time.sleep(1)
    print(f"\nFAULT live container crashed: {len(load.failures)} of {load.total} requests failed "
          f"({len(load.cut_short(crashed))} cut short mid-answer); "
          f"{len(fresh.failures)} of {fresh.calls} fresh MCP sessions")
    assert_no_request_failed_but_one_in_flight(load, crashed)
    assert_only_the_session_in_flight_ended(fresh, crashed)
    assert standby in load.colors, "the standby never answered while the live color restarted"
    assert serving() == (live, commit)


def test_the_live_container_removed_the_standby_serves_status_and_health_say_so_and_rebuild_takes_its_place(warm):
    live, _, standby, standby_commit = warm
    standby_id = inspect(f"loop-api-{standby}", "{{.Id}}")
    with Load(rate=20) as load, FreshSessions("sse") as fresh:
        removed = time.time()
        sh(f"docker rm -f loop-api-{live}")
        time.sleep(2)
        status = inv("status")
        health = inv("health", "--no-alert")
        commit = commit_change(f"in-its-place-{time.time()}")
        rebuilt = inv("rebuild", env=FAST)
    print(f"\nFAULT live container removed: {len(load.failures)} of {load.total} requests failed "
          f"({len(load.cut_short(removed))} cut short mid-answer); "
          f"{len(fresh.failures)} of {fresh.calls} fresh MCP sessions")
    assert_no_request_failed_but_one_in_flight(load, removed)
    assert_only_the_session_in_flight_ended(fresh, removed)
    assert f"(down: the standby loop-api-{standby} serves)" in status.stdout, status.stdout
    assert (f"the live color's container is missing: the proxy sends its requests to the warm standby "
            f"loop-api-{standby} (commit {standby_commit})") in status.stdout, status.stdout
    assert health.returncode == 1, health.stdout + health.stderr
    assert health.stdout.startswith(f"LOOP WARNING - the warm standby ({standby}, commit {standby_commit}) answers"), \
        health.stdout
    assert len(health.stdout.strip().splitlines()) == 1
    # The rebuild deployed where the removed one was; the standby that served stayed as it was.
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"deploying in {live}'s place" in rebuilt.stdout + rebuilt.stderr
    assert serving() == (live, commit)
    assert inspect(f"loop-api-{standby}", "{{.Id}}") == standby_id
    assert inv("health", "--no-alert").returncode == 0


def test_a_refused_release_that_changes_loop_auth_leaves_every_container_and_image_as_it_was(warm):
    live, commit, standby, standby_commit = warm
    before = stack_snapshot()
    with Load(rate=20) as load, AuthLoad() as auth, edited_main("mcp gone, auth image changed",
                                                                lambda text: text + BROKEN_MCP) as broken:
        result = inv("rebuild", env=FAST)
    assert result.returncode != 0
    assert "the MCP gate failed on loop-api-" in result.stderr, result.stderr
    assert load.failures == [] and auth.failures == [], (load.failures[:3], auth.failures[:3])
    after = stack_snapshot()
    # The standby the deploy replaced is brought back on its release: its container is new.
    for snapshot in (before, after):
        snapshot["containers"][f"loop-api-{standby}"] = snapshot["containers"][f"loop-api-{standby}"].split(" ", 1)[1]
    assert after == before
    assert f"loop-api:{broken}" not in after["images"]
    assert serving() == (live, commit)
    assert image_of(standby) == f"loop-api:{standby_commit}" and healthy(f"loop-api-{standby}")
    assert "bringing the warm standby" in result.stderr + result.stdout


def test_loop_auth_changes_only_after_the_gate_and_briefly(warm):
    auth_id = inspect("loop-auth", "{{.Id}}")
    commit = commit_change(f"auth-after-gate-{time.time()}")  # one Dockerfile: loop-auth's image changes too
    with Load(rate=20) as load, AuthLoad() as auth:
        result = inv("rebuild", env=FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\nloop-auth replaced: unreachable {auth.window:.2f} s ({len(auth.failures)} of {auth.total} "
          f"requests at 50/s failed)")
    out = result.stdout
    assert out.index("MCP gate passed") < out.index("loop-auth replaced and healthy") < out.index("switching nginx")
    assert inspect("loop-auth", "{{.Id}}") != auth_id and serving()[1] == commit
    assert load.failures == []
    assert auth.window < 2, auth.failures


def test_a_deploy_killed_after_loop_auth_changed_is_undone_loop_auth_included(warm):
    live, commit, _, _ = warm
    before = {name: inspect(name, "{{.Image}}") for name in ("loop-auth", f"loop-api-{live}")}
    auth_tag = sh("docker image inspect -f '{{.Id}}' loop-loop-auth").stdout.strip()
    commit_change(f"killed-after-aux-{time.time()}")
    process = inv_process("rebuild", env=FAST)
    read_until(process, "loop-auth replaced and healthy", timeout=300)
    pid = sh("pgrep -o -f 'bash .*deploy-blue-green.sh'").stdout.strip()
    sh(f"kill -KILL -- -$(ps -o pgid= -p {pid} | tr -d ' ')")
    process.wait(60)
    wait_for(lock_is_free, 30, "the killed deploy's lock to go")
    # Killed after loop-auth changed and before the verification (the kill lands within the
    # step after the line that times it).
    assert Path(JOURNAL).exists() and re.search(r"^step=(aux|switch)$", Path(JOURNAL).read_text(), re.M), \
        Path(JOURNAL).read_text()
    rolled = inv("rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "the interrupted deploy was undone" in rolled.stdout, rolled.stdout
    assert "putting loop-auth back on" in rolled.stderr + rolled.stdout
    assert serving() == (live, commit)
    assert {name: inspect(name, "{{.Image}}") for name in before} == before
    assert sh("docker image inspect -f '{{.Id}}' loop-loop-auth").stdout.strip() == auth_tag


def test_a_wrapper_that_dies_while_its_deploy_runs_is_reported_as_not_finished(warm):
    commit = commit_change(f"wrapper-dies-{time.time()}")
    with Load(rate=20) as load:
        process = inv_process("rebuild", env=FAST)
        read_until(process, "waiting for loop-api-", timeout=300)
        sh("pkill -KILL -f '^bash -c .* detached '")
        out = process.communicate(timeout=60)[0]
        assert process.returncode == 8, out
        assert "inv rebuild: not finished: deploy-blue-green.sh still runs on the NAS" in out, out
        assert "failed" not in out.splitlines()[-1]
        wait_for(lock_is_free, 120, "the deploy to finish on its own")
    assert load.failures == []
    assert serving()[1] == commit
    assert not Path(JOURNAL).exists()
    assert re.search(r"^deploy +idle$", inv("status").stdout, re.M)
