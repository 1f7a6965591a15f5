"""Root on the NAS stays out of reach of the app container, the SSH user and hostile input: each
way in that a review found, tried on the sandbox (real sshd, sudo, Docker, git)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import uuid

import pytest

from .conftest import running
from rig.sandbox import APP_DIR, LOOPCTL_HOME, NASBOT_ENV, inv, serving, sh
from .support import lock_is_free


def as_user(user: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sudo", "-u", user, "-H", "bash", "-c", command], capture_output=True, text=True)


@pytest.fixture
def scratch():
    """A root-owned folder for homes that must be refused; removed afterwards."""
    path = f"/srv/loop-rig/scratch-{uuid.uuid4().hex[:8]}"
    sh(f"install -d -m 755 {path}")
    yield path
    sh(f"chmod -R u+w {path}; rm -rf {path}; docker rm -f loop-test-mounter >/dev/null 2>&1", check=False)


def test_no_container_of_the_stack_can_reach_the_loopctl_home(deployed):
    color, _ = serving()
    mounts = json.loads(sh(f"docker inspect -f '{{{{json .Mounts}}}}' loop-api-{color} loop-auth").stdout.split("\n")[0])
    for mount in mounts:
        assert not LOOPCTL_HOME.startswith(mount["Source"].rstrip("/") + "/")
        assert not mount["Source"].startswith(LOOPCTL_HOME)
    # What the api can write: the checkout. Nothing there is run by root any more.
    assert sh(f"docker exec loop-api-{color} sh -c 'ls /vault; test -e /vault/.loopctl'", check=False).returncode != 0
    assert "loop-api" not in sh(f"stat -c %U {LOOPCTL_HOME}/scripts/detach.sh").stdout
    assert sh(f"stat -c '%U %a' {LOOPCTL_HOME} {LOOPCTL_HOME}/scripts {LOOPCTL_HOME}/state/lock").stdout.split("\n")[:3] \
        == ["root 755", "root 755", "root 700"]


@pytest.mark.parametrize("make_home, reason", [
    (lambda d: (f"install -d -m 775 {d}/group-writable", f"{d}/group-writable/home"),
     "is writable by group or others (mode 775)"),
    (lambda d: (f"install -d -o nas -m 755 {d}/users", f"{d}/users/home"), "belongs to uid"),
    (lambda d: (f"install -d -m 755 {d}/real && ln -s {d}/real {d}/link", f"{d}/link/home"), "is a symbolic link"),
    (lambda d: (f"install -d -m 755 {d}/mounted && docker run -d --name loop-test-mounter -v {d}/mounted:/x "
                f"loop-rig-base:bookworm sleep 600 >/dev/null", f"{d}/mounted/home"),
     "container loop-test-mounter mounts"),
    # Labels are anyone's text: a tab or a newline in one hides no mount.
    (lambda d: (f"install -d -m 755 {d}/labelled && docker run -d --name loop-test-mounter --label "
                f"\"com.docker.compose.project=$(printf 'a\\tb\\nc\\t')\" -v {d}/labelled:/x "
                f"loop-rig-base:bookworm sleep 600 >/dev/null", f"{d}/labelled/home"),
     "container loop-test-mounter mounts"),
    (lambda d: ("true", f"{APP_DIR}/.loopctl"), "is inside the app checkout"),
    (lambda d: (f"install -d -m 755 {d}/home && ln -s /etc {d}/home/state", f"{d}/home"),
     "home/state is a link, not root's, or writable by others"),
])
def test_setup_refuses_a_home_that_is_not_roots_alone_and_writes_nothing(rig, scratch, make_home, reason):
    prepare, home = make_home(scratch)
    sh(prepare)
    exclude_before = sh(f"cat {APP_DIR}/.git/info/exclude", check=False).stdout
    result = inv("setup", env={"NAS_LOOPCTL_DIR": home})
    assert result.returncode == 7, result.stdout + result.stderr
    assert reason in result.stderr and result.stderr.count("\n") == 1, result.stderr
    if "is a link" not in reason:
        assert sh(f"test -e {home}", check=False).returncode != 0
    assert sh(f"cat {APP_DIR}/.git/info/exclude", check=False).stdout == exclude_before
    assert sh("stat -c %a /etc").stdout.strip() == "755"


def test_the_ssh_user_cannot_replace_what_sudo_runs(deployed):
    for command in (f"mv {LOOPCTL_HOME}/scripts {LOOPCTL_HOME}/old", f"mv {LOOPCTL_HOME} /volume1/old",
                    f"touch {LOOPCTL_HOME}/scripts/x.sh", f"ln -s /tmp {LOOPCTL_HOME}/state/runs/x"):
        assert as_user("nasbot", command).returncode != 0, command
    # The least-privilege lines name loopctl's scripts, not a folder: anything else is refused.
    assert as_user("nasbot", f"sudo -n {LOOPCTL_HOME}/scripts/install.sh {LOOPCTL_HOME} {APP_DIR}").returncode == 1
    assert as_user("nasbot", "sudo -n /bin/sh -c id").returncode == 1
    assert as_user("nasbot", f"sudo -n {LOOPCTL_HOME}/scripts/facts.sh lock").returncode == 0


def test_the_audit_trail_takes_only_records_loopctl_writes(deployed):
    good = ('{"args": {}, "host": "nas@127.0.0.1:2222", "performer": "Ann", "seconds": 1.0, "status": 0, '
            '"time": "2026-11-27T10:00:00Z", "verb": "stop"}')
    script = f"{LOOPCTL_HOME}/scripts/audit-append.sh"
    before = sh(f"wc -l < {LOOPCTL_HOME}/state/audit.jsonl").stdout
    for bad in ("not json", good.replace("Ann", "Ann\x1b[2J"), good.replace("Ann", "Ann\\u001b[2J"),
                good.replace("Ann", "Ann\u00e9"), good.replace('"stop"}', '"stop"}\n{"x": 1}'),
                good.replace('"status": 0', '"status": 0, "extra": "x"')):
        done = as_user("nasbot", f"sudo -n {script} {shlex.quote(bad)}")
        assert done.returncode == 64, (bad, done.stderr)
    assert sh(f"wc -l < {LOOPCTL_HOME}/state/audit.jsonl").stdout == before
    assert as_user("nasbot", f"sudo -n {script} '{good}'").returncode == 0


def test_no_user_can_hold_the_deploy_lock(deployed):
    assert as_user("nas", f"flock -n {LOOPCTL_HOME}/state/lock/deploy.lock true").returncode != 0
    # A reader holding a lock on a file it can read blocks nothing.
    holder = subprocess.Popen(["sudo", "-u", "nas", "flock", "-s", f"{LOOPCTL_HOME}/state/releases.tsv", "sleep", "60"])
    try:
        time.sleep(0.5)
        result = inv("rebuild", "--no-sync", env={"DEPLOY_VERIFY_SECONDS": "1"})
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        holder.kill()
    assert lock_is_free()


def test_git_in_the_checkout_runs_no_hook_and_refuses_a_config_that_would_run_a_program(deployed, tmp_path):
    hook = f"{APP_DIR}/.git/hooks/post-merge"
    marker = tmp_path / "hook-ran"
    sh(f"printf '#!/bin/sh\\ntouch {marker}\\n' > {hook} && chmod 755 {hook} && chown nas {hook}")
    try:
        from rig.sandbox import commit_change

        commit_change(f"hooks-{time.time()}")
        result = inv("local-sync")
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), "a hook planted in the checkout ran"
    finally:
        sh(f"rm -f {hook}")
    sh(f"sudo -u nas git -C {APP_DIR} config core.fsmonitor 'touch {marker}'")
    try:
        refused = inv("local-sync")
        assert refused.returncode == 7 and "core.fsmonitor" in refused.stderr, refused.stderr
        assert "core.fsmonitor" in inv("status").stdout
        assert inv("rebuild").returncode == 7
        # Without local-sync no git runs in the checkout at all: root reads it only by fetching
        # the named commit into its own mirror, which runs nothing of the checkout's config.
        result = inv("rebuild", "--no-sync", env={"DEPLOY_VERIFY_SECONDS": "1"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert not marker.exists()
    finally:
        sh(f"sudo -u nas git -C {APP_DIR} config --unset core.fsmonitor")


def test_an_old_home_in_the_checkout_is_moved_once(deployed):
    old = f"{APP_DIR}/.loopctl"
    record = ('{"args": {}, "host": "nas@127.0.0.1:2222", "performer": "Old", "seconds": 1.0, "status": 0, '
              '"time": "2026-11-20T10:00:00Z", "verb": "rebuild"}')
    sh(f"mkdir -p {old}/state/backups/oauth-20261120T100000Z/keys {old}/scripts && "
       f"printf '2026-11-20T10:00:00Z\\tdeploy\\t0123456789ab\\tloop-api:0123456789ab\\tblue\\tOld\\n"
       f"garbage line\\n' > {old}/state/releases.tsv && "
       f"printf '%s\\nnot a record\\n' '{record}' > {old}/state/audit.jsonl && "
       f"echo key > {old}/state/backups/oauth-20261120T100000Z/keys/signing.pem && "
       f"echo 'rm -rf /' > {old}/scripts/detach.sh && chown -R nas {old}")
    sh(f"rm -f {LOOPCTL_HOME}/state/migrated-from")
    releases_before = sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout
    result = inv("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"moved {old} into {LOOPCTL_HOME} (once): 1 releases, 1 audit records, 1 backup files; {old} is removed"
            in result.stdout), result.stdout
    assert sh(f"test -e {old}", check=False).returncode != 0
    releases = sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout
    assert releases.startswith("2026-11-20T10:00:00Z\tdeploy\t0123456789ab") and releases.endswith(releases_before)
    assert "garbage" not in releases
    assert record in sh(f"cat {LOOPCTL_HOME}/state/audit.jsonl").stdout
    assert sh(f"cat {LOOPCTL_HOME}/state/backups/oauth-20261120T100000Z/keys/signing.pem").stdout == "key\n"
    assert "moved" not in inv("setup").stdout


# --- what the app can plant in the checkout it writes -----------------------------------------

EXEC_VAULT = "/volume1/LOOP_CLevel/vault/loop_exec"


def started_at(name: str) -> str:
    return sh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}").stdout


def plant_fifo(color: str) -> None:
    """A FIFO in place of .git/packed-refs, planted as the api container would (its /vault is the
    checkout, .git included, and it runs as root); every ref is packed first, so git reads it."""
    sh(f"sudo -u nas git -C {APP_DIR} pack-refs --all")
    sh(f"docker exec loop-api-{color} sh -c 'cd /vault/.git && mv packed-refs p.bak && mkfifo packed-refs'")


def remove_fifo() -> None:
    """packed-refs back; a reader still stuck opening the FIFO (as before the fix) gets an end of file."""
    git = f"{APP_DIR}/.git"
    sh(f"if [ -p {git}/packed-refs ]; then mv {git}/packed-refs {git}/fifo.tmp && mv {git}/p.bak {git}/packed-refs "
       f"&& : <>{git}/fifo.tmp; rm -f {git}/fifo.tmp; fi")


def test_a_fifo_in_the_checkouts_git_fails_the_deploy_in_time_frees_the_lock_and_status_answers(deployed):
    from rig.sandbox import commit_change

    color, _ = serving()
    # A commit the NAS checkout has and root's mirror not yet: the deploy must fetch it.
    commit = commit_change(f"fifo-{time.time()}")
    synced = inv("local-sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    plant_fifo(color)
    try:
        started = time.monotonic()
        result = inv("rebuild", "--no-sync", timeout=150)
        took = time.monotonic() - started
        assert result.returncode != 0, result.stdout + result.stderr
        assert took < 30 + 20, f"the deploy took {took:.0f}s; the fetch is bounded at 30s"
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"reading the app checkout {APP_DIR} took longer than 30s" in result.stderr, result.stderr
        assert "blocks reads" in result.stderr
        assert lock_is_free(), "a reader stuck in the checkout holds the deploy lock"

        started = time.monotonic()
        status = inv("status", timeout=60)
        assert time.monotonic() - started < 10 + 10, "status waited on the checkout beyond its 10s bound"
        assert status.returncode == 0, status.stdout + status.stderr
        assert "checkout   unknown (its .git blocks reads: see PROBLEM)" in status.stdout, status.stdout
        assert re.search(rf"^PROBLEM .+ in the NAS checkout {APP_DIR} took longer than 10s .+ blocks reads",
                         status.stdout, re.MULTILINE), status.stdout
        report = json.loads(inv("status", "--json", timeout=60).stdout)
        assert report["checkout_commit"] is None
        assert any("blocks reads" in problem for problem in report["problems"]), report["problems"]

        # local-sync, as the SSH user: refused in its bound too, before anything is pushed.
        started = time.monotonic()
        refused = inv("local-sync", timeout=120)
        assert time.monotonic() - started < 2 * 10 + 15
        assert refused.returncode == 7 and "blocks reads" in refused.stderr, refused.stdout + refused.stderr
        assert refused.stderr.count("\n") == 1
    finally:
        remove_fifo()
    # Nothing was wedged: the same deploy goes through once the FIFO is gone.
    assert lock_is_free()
    result = inv("rebuild", "--no-sync", env={"DEPLOY_VERIFY_SECONDS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert serving()[1] == commit


def test_restart_refuses_a_mount_source_turned_into_a_link_and_leaves_the_container_alone(deployed):
    color, commit = serving()
    name = f"loop-api-{color}"
    release = sh(f"cat {LOOPCTL_HOME}/releases/{commit}/release.env").stdout
    assert EXEC_VAULT in re.search(r"^BIND_SOURCES=(.*)$", release, re.MULTILINE).group(1).split(",")
    before = started_at(name)
    sh(f"mv {EXEC_VAULT} {EXEC_VAULT}.real && ln -s loop_exec.real {EXEC_VAULT}")
    try:
        result = inv("restart")
        assert result.returncode == 7, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"the mount source {EXEC_VAULT} goes through a symbolic link" in result.stderr, result.stderr
        assert started_at(name) == before
        assert running(name)
    finally:
        sh(f"if [ -L {EXEC_VAULT} ]; then rm {EXEC_VAULT} && mv {EXEC_VAULT}.real {EXEC_VAULT}; fi")
    assert lock_is_free()
    assert serving() == (color, commit)
