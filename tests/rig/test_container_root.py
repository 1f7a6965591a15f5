"""The api container, played as an attacker would play it (`docker exec` into the live color, as
the root user its image runs as), never becomes root on the NAS: nothing it writes decides what
root mounts, reads or keeps. Each test fails on a loopctl that mounts the OAuth folder from the
checkout, resolves Compose against the checkout, or backs up with `cp -a`."""

from __future__ import annotations

import re
import shlex
import subprocess
import time

import pytest

from rig.sandbox import APP_DIR, LOOPCTL_HOME, OAUTH_DIR, OAUTH_VOLUME, WORKSTATION, inv, serving, sh
from .support import lock_is_free, oauth_digests

FAST = {"DEPLOY_VERIFY_SECONDS": "1"}


def in_live(command: str, check: bool = True, text: str | None = None) -> subprocess.CompletedProcess:
    """A shell in the live api container, as root: what a compromised app can do. `text` is its stdin."""
    return subprocess.run(["docker", "exec", "-i", f"loop-api-{serving()[0]}", "sh", "-c", command], input=text,
                          capture_output=True, text=True, check=check)


def stack_has_the_volume() -> None:
    """A stack deployed by this loopctl: an older one's colors mount the checkout's folder."""
    if sh(f"test -s {LOOPCTL_HOME}/state/oauth-moved", check=False).returncode != 0:
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr


def wait_healthy(name: str, since: str, timeout: float = 60) -> None:
    """Until NAME was started again after SINCE (Docker's restart policy) and is healthy."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = sh(f"docker inspect -f '{{{{.State.StartedAt}}}} {{{{.State.Health.Status}}}}' {name}",
                   check=False).stdout.split()
        if len(state) == 2 and state[0] != since and state[1] == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} did not come back healthy")


def started_at(name: str) -> str:
    return sh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}").stdout.strip()


def host_root_inode() -> str:
    return sh("stat -c %i /").stdout.strip()


@pytest.mark.parametrize("swap", [
    # The OAuth folder itself, or the folder above it, replaced by a link to the NAS's /.
    "mv /vault/api/oauth /vault/api/.oauth-moved && ln -s / /vault/api/oauth",
    "mv /vault/api /vault/.api-moved && mkdir /vault/api && ln -s / /vault/api/oauth",
])
def test_a_link_and_an_exit_never_give_the_container_the_nas(deployed, swap):
    assert inv("local-sync").returncode == 0
    stack_has_the_volume()
    color, _ = serving()
    keys = oauth_digests()
    try:
        in_live(swap)
        for name in (f"loop-api-{color}", "loop-auth"):
            before = started_at(name)
            if name == "loop-auth":
                sh("docker restart -t 2 loop-auth")  # as a reboot or `docker restart` would
            else:
                in_live("kill 1", check=False)  # the container chooses when it exits
            wait_healthy(name, before)
            inode = sh(f"docker exec {name} stat -c %i /app/api/oauth/").stdout.strip()
            assert inode != host_root_inode(), f"{name} has the NAS's / at /app/api/oauth"
            assert sh(f"docker exec {name} test -e /app/api/oauth/etc/passwd", check=False).returncode != 0
            mounts = sh(f"docker inspect -f '{{{{range .Mounts}}}}{{{{.Type}}}} {{{{.Name}}}} {{{{.Destination}}}}"
                        f"{{{{println}}}}{{{{end}}}}' {name}").stdout
            assert f"volume {OAUTH_VOLUME} /app/api/oauth" in mounts, mounts
        assert oauth_digests() == keys
        # The next deploy, with the checkout's folder still a link, deploys as ever: nothing of the
        # stack mounts it.
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        assert oauth_digests() == keys
    finally:
        sh(f"cd {APP_DIR} && if [ -d .api-moved ]; then rm -rf api && mv .api-moved api; fi; "
           f"if [ -L api/oauth ]; then rm api/oauth && mv api/.oauth-moved api/oauth; fi", check=False)
    assert lock_is_free()


def commit_files(message: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        (WORKSTATION / path).write_text(text)
    subprocess.run(["git", "-C", str(WORKSTATION), "add", *files], check=True)
    subprocess.run(["git", "-C", str(WORKSTATION), "commit", "-qm", message], check=True)


BASE = "services:\n  auth-base:\n    restart: unless-stopped\n"


@pytest.fixture
def extended_auth(deployed):
    """A commit whose loop-auth takes part of its definition from a second committed file
    (`extends: file:`), as an app split in several compose files does; undone afterwards."""
    compose = WORKSTATION / "docker-compose.yml"
    original = compose.read_text()
    extended = original.replace("  loop-auth:\n", "  loop-auth:\n    extends:\n      file: auth-base.yml\n"
                                                   "      service: auth-base\n", 1)
    assert extended != original
    commit_files("test: loop-auth extends a committed base", {"docker-compose.yml": extended, "auth-base.yml": BASE})
    yield
    subprocess.run(["git", "-C", str(WORKSTATION), "rm", "-q", "auth-base.yml"], check=True)
    compose.write_text(original)
    subprocess.run(["git", "-C", str(WORKSTATION), "commit", "-qam", "test: back to one compose file"], check=True)
    assert inv("rebuild", env=FAST).returncode == 0


def test_compose_reads_the_commit_not_files_the_container_rewrote(extended_auth):
    assert inv("local-sync").returncode == 0
    # The container rewrites the committed base in the checkout: privileges, the host's PIDs, /etc.
    evil = BASE + "    privileged: true\n    pid: host\n    volumes:\n      - /etc:/host-etc\n"
    in_live("cat > /vault/auth-base.yml", text=evil)
    try:
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        host = sh("docker inspect -f '{{.HostConfig.Privileged}} {{.HostConfig.PidMode}} "
                  "{{range .Mounts}}{{.Source}},{{end}}' loop-auth").stdout
        assert host.startswith("false  "), host
        assert "/etc" not in host.split(" ", 2)[2].split(","), host
    finally:
        sh(f"cd {APP_DIR} && sudo -u nas git checkout -q -- auth-base.yml", check=False)


def test_a_host_setting_from_a_variable_in_any_committed_file_is_refused(extended_auth):
    """The committed base takes `privileged` from a variable: the checkout's .env decides it."""
    commit_files("test: a host setting from a variable", {"auth-base.yml": BASE + "    privileged: ${PRIV:-false}\n"})
    env = f"{APP_DIR}/.env"
    saved = sh(f"cat {env}").stdout
    sh(f"printf 'PRIV=true\\n' >> {env}")
    try:
        result = inv("rebuild", env=FAST)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "service loop-auth: `privileged` takes a value from a variable" in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert sh("docker inspect -f '{{.HostConfig.Privileged}}' loop-auth").stdout.strip() == "false"
    finally:
        sh(f"printf '%s' {shlex.quote(saved)} > {env}")


@pytest.mark.parametrize("planted, named", [
    ("ln -s /etc/shadow /vault/.env", "is not a plain file"),
    ("mkfifo /vault/.env", "is not a plain file"),
    ("head -c 70000 /dev/zero | tr '\\0' a > /vault/.env", "is larger than 64 KiB"),
])
def test_a_checkout_env_that_is_a_link_a_fifo_or_huge_is_refused_at_once(deployed, planted, named):
    env = f"{APP_DIR}/.env"
    saved = sh(f"cat {env}").stdout
    sh(f"rm -f {env}")
    try:
        in_live(planted)
        started = time.monotonic()
        result = inv("rebuild", "--no-sync", env=FAST)
        assert time.monotonic() - started < 30
        assert result.returncode == 7, result.stdout + result.stderr
        assert named in result.stderr and result.stderr.count("\n") == 1, result.stderr
    finally:
        sh(f"rm -f {env} && printf '%s' {shlex.quote(saved)} > {env} && chown nas:nas {env}")
    assert lock_is_free()


def test_compose_and_docker_settings_in_the_checkout_env_are_not_compose_s(deployed):
    """COMPOSE_PROJECT_NAME in .env would rename the project (and its network); it is dropped."""
    env = f"{APP_DIR}/.env"
    saved = sh(f"cat {env}").stdout
    in_live("cat >> /vault/.env", text="COMPOSE_PROJECT_NAME=evil\nDOCKER_HOST=tcp://127.0.0.9:1\n")
    try:
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        assert sh("docker network inspect evil_default", check=False).returncode != 0
    finally:
        sh(f"printf '%s' {shlex.quote(saved)} > {env}; docker network rm evil_default >/dev/null 2>&1", check=False)


def backups() -> list[str]:
    return sh(f"ls -d {LOOPCTL_HOME}/state/backups/oauth-* 2>/dev/null", check=False).stdout.split()


@pytest.mark.parametrize("planted, named", [
    ("ln -s /etc /app/api/oauth/keys/elsewhere", "holds a link (./keys/elsewhere"),
    ("mkfifo /app/api/oauth/pipe", "holds a special file (./pipe"),
    ("mknod /app/api/oauth/disk b 8 0", "holds a special file (./disk"),
])
def test_rebuild_all_refuses_state_that_is_not_files_and_the_home_stays_safe(deployed, planted, named):
    keys = oauth_digests()
    before = backups()
    in_live(planted)
    try:
        result = inv("rebuild-all", "--yes", "--no-sync", env=FAST)
        assert result.returncode == 7, result.stdout + result.stderr
        assert named in result.stderr and "nothing copied" in result.stderr, result.stderr
        assert oauth_digests() == keys
        assert backups() == before
        status = inv("status")
        assert "PROBLEM" not in status.stdout, status.stdout
    finally:
        in_live("rm -f /app/api/oauth/keys/elsewhere /app/api/oauth/pipe /app/api/oauth/disk")
    assert lock_is_free()


def test_group_writable_state_is_backed_up_as_roots_alone(deployed):
    """An app with umask 002 writes group-writable files, owned by whoever it runs as."""
    in_live("umask 002 && mkdir -p /app/api/oauth/extra && echo x > /app/api/oauth/extra/note && "
            "chown -R 1000:1000 /app/api/oauth/extra")
    try:
        result = inv("rebuild-all", "--yes", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        backup = re.search(r"the old OAuth keys are in (\S+) \(", result.stdout).group(1)
        entries = [line.split() for line in sh(f"find {backup} -printf '%u %m %y\\n'").stdout.splitlines()]
        assert all(user == "root" and int(mode, 8) & 0o077 == 0 and kind in "df" for user, mode, kind in entries), entries
        assert ["root", "600", "f"] in entries
        assert "PROBLEM" not in inv("status").stdout
    finally:
        in_live("rm -rf /app/api/oauth/extra")


def test_setup_repairs_a_home_an_older_backup_made_unsafe(deployed):
    """What `cp -a` of a container's folder left in root's home: a link, a FIFO, a user's file."""
    bad = f"{LOOPCTL_HOME}/state/backups/oauth-20261101T000000Z"
    sh(f"mkdir -p {bad}/keys && ln -s / {bad}/root && mkfifo {bad}/pipe && echo k > {bad}/keys/signing.pem && "
       f"chown -R 1000:1000 {bad}/keys && chmod 775 {bad}/keys")
    try:
        refused = inv("rebuild", "--no-sync", env=FAST)
        assert refused.returncode == 7 and "not safe for root" in refused.stderr, refused.stderr
        result = inv("setup")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "removed state/backups/oauth-20261101T000000Z/root from the backups: symbolic link" in result.stdout
        assert "removed state/backups/oauth-20261101T000000Z/pipe from the backups: fifo" in result.stdout
        assert sh(f"stat -c '%u %a' {bad}/keys {bad}/keys/signing.pem").stdout.split("\n")[:2] == ["0 755", "0 644"]
        assert sh(f"cat {bad}/keys/signing.pem").stdout == "k\n"
        assert "PROBLEM" not in inv("status").stdout
    finally:
        sh(f"rm -rf {bad}")


def test_a_takeover_refuses_an_oauth_folder_the_app_swapped_for_a_link(rig):
    """Before the first rebuild, the app's own loop-api (its compose mounts the checkout) swaps
    api/oauth for a link to /: the move into the volume refuses, copies nothing, and the app's own
    container keeps serving as before."""
    from rig.sandbox import app_compose_up, get, reset_nas

    reset_nas()
    assert inv("setup").returncode == 0
    assert inv("local-sync").returncode == 0
    app_compose_up()
    deadline = time.time() + 60
    while sh("docker inspect -f '{{.State.Health.Status}}' loop-api", check=False).stdout.strip() != "healthy":
        assert time.time() < deadline, "the app's own compose did not come up"
        time.sleep(0.5)
    swap = "mv /vault/api/oauth /vault/api/.oauth-moved && ln -s / /vault/api/oauth"
    sh(f"docker exec loop-api sh -c {shlex.quote(swap)}")
    try:
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 7, result.stdout + result.stderr
        assert f"{OAUTH_DIR} is not a plain folder (a link on its way, or missing): refused, nothing copied" \
            in result.stderr, result.stderr
        status, headers, _ = get("/health")
        assert status == 200 and "x-loop-color" not in headers  # the app's own container, untouched
        assert sh(f"docker run --rm -v {OAUTH_VOLUME}:/v:ro --entrypoint ls loop-rig-base:bookworm -A /v",
                  check=False).stdout == ""
        assert sh(f"test -e {LOOPCTL_HOME}/state/oauth-moved", check=False).returncode != 0
        assert sh("docker ps -q --filter status=paused").stdout == ""
    finally:
        sh(f"cd {APP_DIR} && rm -f api/oauth && mv api/.oauth-moved api/oauth", check=False)
    assert lock_is_free()
