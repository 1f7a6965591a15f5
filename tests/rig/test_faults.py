"""The fault matrix: what the NAS does that nobody planned, one test per fault, on the sandbox
under a steady request load. The bar is the same for each: afterwards exactly one release
serves through the proxy, `inv status` tells the truth, the release history matches what
happened, nothing is lost (OAuth keys, kept images), and the next verb works without repair
by hand. The failed requests each fault costs are printed (`pytest -s`) for docs/failures.md."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from rig.load import Load
from rig.sandbox import APP_DIR, LOOPCTL_HOME, WORKSTATION, commit_change, get, inv, inv_process, serving, sh
from .support import lock_is_free, oauth_digests, read_until, running_api_colors

FAST = {"DEPLOY_VERIFY_SECONDS": "3"}
STATE = f"{LOOPCTL_HOME}/state"
JOURNAL = f"{STATE}/journal"
STACK_ENV = f"{LOOPCTL_HOME}/stack.env"
DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def image_of(color: str) -> str:
    return sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{color}", check=False).stdout.strip()


def last_record() -> list[str]:
    lines = Path(f"{STATE}/releases.tsv").read_text().splitlines()
    return lines[-1].split("\t") if lines else []


def report(fault: str, load: Load) -> None:
    print(f"\nFAULT {fault}: {len(load.failures)} of {load.total} requests failed")


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"waited {seconds}s for {what}"
        time.sleep(0.25)


def serves() -> bool:
    try:
        serving()
        return True
    except (AssertionError, OSError, KeyError, ValueError):
        return False


def assert_the_bar(keys: str, *, recorded: bool = True) -> tuple[str, str]:
    """One release serves, status agrees with it and names no journal, the history's last
    record is it, the keys are the same bytes, and the lock is free."""
    color, commit = serving()
    status = inv("status")
    assert status.returncode == 0, status.stderr
    assert f"live       {color}  commit {commit}" in status.stdout, status.stdout
    assert "cut short" not in status.stdout, status.stdout
    if recorded:
        record = last_record()
        assert record[2] == commit and record[4] == color, record
    assert oauth_digests() == keys
    assert lock_is_free()
    assert not Path(JOURNAL).exists()
    return color, commit


def next_rebuild_works(label: str) -> str:
    commit = commit_change(f"{label}-next-{time.time()}")
    result = inv("rebuild", env=FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert serving()[1] == commit
    assert last_record()[2] == commit
    return result.stdout


@pytest.fixture
def keys(deployed) -> str:
    """The OAuth keys' digests before the fault; a release before the live one kept warm (not
    the live commit again, as a rebuild-all or a takeover before this test may leave it)."""
    if len(running_api_colors()) < 2 or image_of("blue") == image_of("green"):
        commit_change(f"warm-{time.time()}")
        assert inv("rebuild", env=FAST).returncode == 0
    return oauth_digests()


# --- 1. a color's container removed or stopped by hand -----------------------------------------

@pytest.mark.parametrize("how", ["rm -f", "stop -t 1"])
def test_the_live_color_removed_or_stopped_by_hand_then_rollback_and_rebuild(keys, how):
    live, commit = serving()
    standby = image_of(other(live)).rsplit(":", 1)[1]
    with Load(rate=20) as load:
        sh(f"docker {how} loop-api-{live}")
        status = inv("status")
        rolled = inv("rollback")
    report(f"live color {how}", load)
    word = "missing" if how == "rm -f" else "exited"
    assert f"the live color's container is {word}: the proxy sends its requests to the warm standby" \
        in status.stdout, status.stdout
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    # The standby served from the moment the live color went: no request failed.
    assert load.failures == [], load.failures[:5]
    assert serving() == (other(live), standby)
    assert_the_bar(keys)
    next_rebuild_works("live-gone")
    assert_the_bar(keys)


def test_the_standby_removed_by_hand_then_rebuild(keys):
    live, _ = serving()
    with Load(rate=20) as load:
        sh(f"docker rm -f loop-api-{other(live)}")
        status = inv("status")
        out = next_rebuild_works("standby-gone")
    report("standby removed", load)
    assert re.search(rf"^standby +loop-api-{other(live)} \(missing\)", status.stdout, re.M), status.stdout
    assert load.failures == []
    assert "deploy failed" not in out
    assert_the_bar(keys)


# --- 2. the deploy script killed (SIGKILL) at each step ----------------------------------------

def kill_the_deploy() -> None:
    """SIGKILL to the deploy script's whole process group: no trap runs, as on an OOM kill or
    power loss of the process."""
    pid = sh("pgrep -o -f 'bash .*deploy-blue-green.sh'").stdout.strip()
    group = sh(f"ps -o pgid= -p {pid}").stdout.strip()
    sh(f"kill -KILL -- -{group}")


@contextmanager
def docker_wrapper(trigger: str, step: str) -> Iterator[None]:
    """stack.env names a docker that kills the deploy when asked for `trigger` (a part of its
    arguments) while the journal says `step`, instead of doing it: the moment between two of
    the script's commands."""
    wrapper = "/usr/local/libexec/loop-fault-docker"
    sh(f"mkdir -p /usr/local/libexec && cat > {wrapper} <<'EOF'\n#!/bin/bash\n"
       f"if [[ \"$*\" == *'{trigger}'* ]] && grep -qx 'step={step}' {JOURNAL}; then\n"
       "  pid=$(pgrep -o -f 'bash .*deploy-blue-green.sh'); kill -KILL -- -$(ps -o pgid= -p \"$pid\" | tr -d ' ')\n"
       "  exit 1\nfi\n"
       f"exec {DOCKER} \"$@\"\nEOF\nchmod 755 {wrapper}")
    # A standalone Compose lies beside docker (DSM's layout, rig/compose.sh standalone-...): beside
    # the wrapper too, so the scripts find the same Compose.
    beside = f"{Path(DOCKER).parent}/docker-compose"
    sh(f"rm -f /usr/local/libexec/docker-compose; if [ -e {beside} ]; then "
       f"ln -s {beside} /usr/local/libexec/docker-compose; fi")
    sh(f"cp {STACK_ENV} /tmp/stack.env.saved && sed -i 's#^DOCKER=.*#DOCKER={wrapper}#' {STACK_ENV}")
    try:
        yield
    finally:
        sh(f"cp /tmp/stack.env.saved {STACK_ENV}; rm -f /usr/local/libexec/docker-compose")


STEPS = {
    # step: (how the kill is timed, the line or the docker arguments that time it)
    "build": ("line", "==> deploy "),
    "health": ("line", "waiting for loop-api-"),
    "upstream replaced, before the reload": ("docker", "-s reload || exit 2"),
    "verify": ("line", "==> verifying through the proxy"),
}


@pytest.mark.parametrize("step", STEPS)
def test_the_deploy_killed_at_each_step_is_repaired_by_the_next_verb(keys, step):
    old_color, old_commit = serving()
    how, marker = STEPS[step]
    commit = commit_change(f"killed-{step.split()[0]}-{time.time()}")
    with Load(rate=20) as load:
        if how == "docker":
            with docker_wrapper(marker, "switch"):
                killed = inv("rebuild", "--allow-drift", env=FAST)
        else:
            process = inv_process("rebuild", env=FAST)
            read_until(process, marker, timeout=300)
            if step == "build":
                time.sleep(0.3)  # into the build itself
            kill_the_deploy()
            killed = subprocess.CompletedProcess(process.args, process.wait(60), process.stdout.read(), "")
        wait_for(lock_is_free, 30, "the killed deploy's lock to go")
        assert killed.returncode != 0
        # What the kill left: the journal, and a status that says so; one release serves.
        assert Path(JOURNAL).exists(), "the killed deploy left no journal"
        status = inv("status")
        assert "cut short at step" in status.stdout, status.stdout
        assert serves()
        # The next verb repairs first, then does its own work.
        out = next_rebuild_works(f"after-kill-{step.split()[0]}")
    report(f"deploy killed at {step}", load)
    assert "was cut short at step" in out and "repairing that first" in out, out
    assert load.failures == [], load.failures[:5]
    assert_the_bar(keys)
    # The killed release's container went with the repair; the old release is the standby now.
    assert sorted(running_api_colors()) == ["blue", "green"]
    assert image_of(old_color) == f"loop-api:{old_commit}"
    assert commit


def test_a_rollback_after_a_killed_deploy_only_undoes_it(keys):
    old_color, old_commit = serving()
    commit_change(f"killed-then-rollback-{time.time()}")
    process = inv_process("rebuild", env=FAST)
    read_until(process, "==> verifying through the proxy", timeout=300)
    kill_the_deploy()
    process.wait(60)
    wait_for(lock_is_free, 30, "the killed deploy's lock to go")
    rolled = inv("rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "the interrupted deploy was undone" in rolled.stdout, rolled.stdout
    assert serving() == (old_color, old_commit)
    assert_the_bar(keys)


# --- 3. Docker restarted during a deploy, and the whole NAS rebooted ------------------------------

def restart_dockerd(down_seconds: float = 0) -> None:
    """Stop dockerd as a shutdown does (it stops every container), then start it again: the
    restart policies decide what comes back."""
    sh("pkill -TERM -x dockerd")
    wait_for(lambda: sh("pgrep -x dockerd", check=False).returncode != 0, 60, "dockerd to stop")
    time.sleep(down_seconds)
    sh("setsid dockerd >>/var/lib/loop-rig/dockerd.log 2>&1 </dev/null &")
    wait_for(lambda: sh("docker info", check=False).returncode == 0, 60, "dockerd to start")


def test_the_nas_rebooted_serves_the_release_that_was_live(keys):
    before = serving()
    restart_dockerd(down_seconds=1)
    # While the live color starts, the warm standby may answer for it (the proxy's fallback).
    wait_for(lambda: serves() and serving() == before, 60, "the live release to serve again after the restart")
    assert sorted(running_api_colors()) == ["blue", "green"]
    assert_the_bar(keys)
    next_rebuild_works("after-reboot")


def test_dockerd_restarted_during_a_deploy(keys):
    """The deploy either rides it out (the new color comes back by its restart policy and
    passes) or fails and is undone (now, or by the next verb if Docker was still down)."""
    before = serving()
    commit = commit_change(f"dockerd-{time.time()}")
    process = inv_process("rebuild", env=FAST)
    read_until(process, "waiting for loop-api-", timeout=300)
    restart_dockerd()
    code = process.wait(180)
    wait_for(serves, 60, "the proxy to serve again after the restart")
    wait_for(lock_is_free, 30, "the deploy's lock to go")
    assert serving()[1] == (commit if code == 0 else before[1]), (code, process.stdout.read())
    next_rebuild_works("after-dockerd")
    assert_the_bar(keys)


# --- 4. the proxy removed or crashed -------------------------------------------------------------

@pytest.mark.parametrize("verb", ["rollback", "rebuild"])
def test_the_proxy_removed_is_named_by_status_and_health_and_brought_back(keys, verb):
    sh("docker rm -f loop-proxy")
    status = inv("status")
    assert "the proxy loop-proxy is missing" in status.stdout, status.stdout
    health = inv("health", "--no-alert", "--url", "http://127.0.0.1:8082")
    assert health.returncode == 2 and health.stdout.startswith("LOOP CRITICAL - ") and "refused" in health.stdout, \
        health.stdout
    if verb == "rollback":
        result = inv("rollback")
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        next_rebuild_works("proxy-gone")
    assert_the_bar(keys)


def test_a_crashed_proxy_comes_back_by_its_restart_policy(keys):
    before = serving()
    with Load(rate=20) as load:
        pid = sh("docker inspect -f '{{.State.Pid}}' loop-proxy").stdout.strip()
        sh(f"kill -KILL {pid}")
        wait_for(serves, 30, "the proxy to come back")
    report("proxy crashed", load)
    assert serving() == before
    assert_the_bar(keys)


# --- 5. the upstream file missing or garbled -----------------------------------------------------

@pytest.mark.parametrize("damage", ["rm -f", "garble"])
def test_a_lost_upstream_file_keeps_serving_is_named_and_the_next_deploy_repairs_it(keys, damage):
    upstream = f"{STATE}/nginx/upstream.conf"
    before = serving()
    with Load(rate=20) as load:
        if damage == "rm -f":
            sh(f"rm -f {upstream}")
        else:
            sh(f"printf 'map $host $loop_upstream {{ default nowhere; }}\\n' > {upstream}")
        status = inv("status")
        assert serving() == before
        out = next_rebuild_works(f"upstream-{damage.split()[0]}")
    report(f"upstream file {damage}", load)
    word = "missing" if damage == "rm -f" else "garbled"
    assert f"the upstream file state/nginx/upstream.conf is {word}" in status.stdout, status.stdout
    assert "is missing or garbled" in out
    assert load.failures == []
    assert_the_bar(keys)


# --- 6. the disk full during the build ----------------------------------------------------------

@contextmanager
def full_disk(path: str) -> Iterator[None]:
    """An 8 KiB filesystem mounted over `path` (root's, mode 700, as the home wants it), in the
    mount namespace the sandbox's sshd (and so every NAS script) runs in."""
    inside = "nsenter -t $(cat /var/lib/loop-rig/sshd.pid) -m"
    sh(f"{inside} mount -t tmpfs -o size=8k,mode=0700 loop-fault-full {path}")
    try:
        yield
    finally:
        sh(f"{inside} umount {path}")


def test_a_full_disk_during_the_build_leaves_the_old_release_serving_and_says_so(keys):
    before = serving()
    releases_before = Path(f"{STATE}/releases.tsv").read_text()
    commit = commit_change(f"full-{time.time()}")
    with Load(rate=20) as load, full_disk(f"{LOOPCTL_HOME}/build"):
        result = inv("rebuild", env=FAST)
    report("disk full during the build", load)
    assert result.returncode != 0
    assert "the disk is full" in result.stderr and "/volume1/@loopctl/build" in result.stderr, result.stderr
    assert serving() == before and load.failures == []
    assert Path(f"{STATE}/releases.tsv").read_text() == releases_before
    leftovers = sh(f"find {LOOPCTL_HOME} -path {LOOPCTL_HOME}/git -prune -o -name '*.new' -print").stdout
    assert leftovers == "", leftovers
    assert_the_bar(keys)
    assert commit
    next_rebuild_works("after-full")


# --- 7. a build that never finishes ------------------------------------------------------------

def test_a_build_that_never_finishes_is_stopped_by_the_build_timeout_and_undone(keys):
    before = serving()
    dockerfile = WORKSTATION / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original + "RUN sleep 600\n")
    subprocess.run(["git", "-C", str(WORKSTATION), "commit", "-qam", "test: a build that hangs"], check=True)
    try:
        with Load(rate=20) as load:
            started = time.monotonic()
            result = inv("rebuild", env={**FAST, "DEPLOY_BUILD_TIMEOUT": "5"})
            took = time.monotonic() - started
    finally:
        dockerfile.write_text(original)
        subprocess.run(["git", "-C", str(WORKSTATION), "commit", "-qam", "test: the build ends again"], check=True)
    report("build never finishes", load)
    assert result.returncode != 0
    assert "the build took longer than 5s (DEPLOY_BUILD_TIMEOUT): stopped" in result.stderr, result.stderr
    assert took < 60
    assert serving() == before and load.failures == []
    assert_the_bar(keys)
    next_rebuild_works("after-timeout")


# --- 8. the SSH connection cut during local-sync and setup --------------------------------------

def test_local_sync_cut_after_the_push_completes_when_run_again(keys):
    commit = commit_change(f"cut-sync-{time.time()}")
    full = subprocess.run(["git", "-C", str(WORKSTATION), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # What a cut after the push leaves: the remote has the commit, the NAS checkout does not.
    subprocess.run(["git", "-C", str(WORKSTATION), "push", "-q", "origin", "HEAD"], check=True)
    assert sh(f"sudo -u nas git -C {APP_DIR} rev-parse HEAD").stdout.strip() != full
    again = inv("local-sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sh(f"sudo -u nas git -C {APP_DIR} rev-parse HEAD").stdout.strip() == full
    assert commit


def test_setup_cut_half_way_is_completed_by_running_it_again(keys):
    process = inv_process("setup", env={"KEEP_RELEASES": "6"})
    read_until(process, "==> installing", timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(2)
    again = inv("setup")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "in sync" in again.stdout
    leftovers = sh(f"find {LOOPCTL_HOME} -name '*.new'").stdout
    assert leftovers == ""
    assert_the_bar(keys)
    next_rebuild_works("after-setup-cut")
