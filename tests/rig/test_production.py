"""The real app's shape end to end: its own compose file is the source of truth, deploys build
exactly the commit, the OAuth keys survive, and a running production is taken over and given
back. Runs under the Compose that LOOP_TEST_COMPOSE names (test.sh runs it under both)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from rig.load import Load
from rig.sandbox import (APP_DIR, COMPOSE, LOOPCTL_HOME, OAUTH_DIR, OAUTH_VOLUME, V2_CLI, WORKSTATION, app_compose_up,
                         get, inv, reset_nas, serving, sh)
from .support import file_digests, lock_is_free, oauth_digests

FAST = {"DEPLOY_VERIFY_SECONDS": "2"}


def nas_git(*args: str) -> str:
    return sh(f"sudo -u nas git -C {APP_DIR} " + " ".join(args)).stdout.strip()


def commit_compose(label: str, change) -> str:
    """Commit an edit of the app's docker-compose.yml in the workstation clone; returns the short commit."""
    path = WORKSTATION / "docker-compose.yml"
    model = yaml.safe_load(path.read_text())
    change(model)
    path.write_text(f"# {label}\n" + yaml.safe_dump(model, sort_keys=False))
    sh(f"git -C {WORKSTATION} commit -qam 'test: {label}'")
    return sh(f"git -C {WORKSTATION} rev-parse --short=12 HEAD").stdout.strip()


def revert_last_commit() -> None:
    sh(f"git -C {WORKSTATION} revert --no-edit HEAD >/dev/null")


def container_image(name: str) -> str:
    return sh(f"docker inspect -f '{{{{.Image}}}}' {name}", check=False).stdout.strip()


def test_the_takeover_of_a_running_production_and_the_rollback_that_gives_it_back(rig):
    """The app's own `compose up` runs loop-api on 8082 and loop-auth on 8084; the first rebuild
    moves 8082 to the proxy (the gap is measured), keeps loop-api stopped and its image, and
    `inv rollback` puts production back as it was. No OAuth key changes on the way."""
    reset_nas()
    assert inv("setup").returncode == 0
    assert inv("local-sync").returncode == 0
    app_compose_up()
    deadline = time.time() + 60
    while sh("docker inspect -f '{{.State.Health.Status}}' loop-api loop-auth", check=False).stdout.split() != \
            ["healthy", "healthy"]:
        assert time.time() < deadline, "the app's own compose did not come up"
        time.sleep(0.5)
    keys = file_digests(OAUTH_DIR)
    assert "keys/signing.pem" in keys
    legacy_image, auth_id = container_image("loop-api"), sh("docker inspect -f '{{.Id}}' loop-auth").stdout
    assert get("/health")[0] == 200

    status = inv("status")
    assert "live       app (" in status.stdout, status.stdout
    with Load(rate=50) as load:
        result = inv("rebuild", "--no-sync", env=FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    moved = re.search(r"port 8082 moved from loop-api to loop-proxy in ([\d.]+)s", result.stdout)
    assert moved, result.stdout
    failed = [t for t, _ in load.failures]
    gap = (max(failed) - min(failed)) if failed else 0.0
    print(f"takeover under {COMPOSE}: port moved in {moved.group(1)}s, {len(failed)} of {load.total} requests "
          f"failed over {gap:.2f}s")
    assert gap < 2.0 and float(moved.group(1)) < 2.0
    assert serving()[0] == "blue"
    assert sh("docker inspect -f '{{.State.Status}}' loop-api").stdout.strip() == "exited"
    assert container_image("loop-api") == legacy_image
    # The OAuth state moved into the stack's volume, byte for byte, with a backup; the folder is
    # left as it was, and loop-auth (whose mount changed) reads the volume now.
    assert oauth_digests() == keys and file_digests(OAUTH_DIR) == keys
    assert "OAuth state copied from" in result.stdout
    assert sh("docker inspect -f '{{.Id}}' loop-auth").stdout != auth_id
    assert f"{OAUTH_VOLUME} /app/api/oauth" in sh("docker inspect -f '{{range .Mounts}}{{.Name}} {{.Destination}}"
                                                  "{{println}}{{end}}' loop-auth").stdout
    assert f"oauth      volume {OAUTH_VOLUME} (moved from {OAUTH_DIR}" in inv("status").stdout
    # What the stack writes from now on is in the volume; the rollback to the app carries it back.
    color = serving()[0]
    sh(f"docker exec loop-api-{color} sh -c 'echo issued-since > /app/api/oauth/since-takeover'")
    keys = oauth_digests()
    history = inv("releases").stdout
    assert re.search(r"adopted\s+app\s+app", history) and re.search(r"deploy\s+[0-9a-f]{12}\s+blue", history)

    with Load(rate=50) as load:
        back = inv("rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "giving port 8082 back to loop-api" in back.stdout
    status_code, headers, _ = get("/health")
    assert status_code == 200 and "x-loop-color" not in headers
    assert sh("docker inspect -f '{{.State.Status}}' loop-api loop-proxy").stdout.split() == ["running", "exited"]
    assert file_digests(OAUTH_DIR) == keys, "the app's own container reads the state the stack wrote"
    failed = [t for t, _ in load.failures]
    print(f"rollback to the app under {COMPOSE}: {len(failed)} of {load.total} requests failed")
    assert "live       app (" in inv("status").stdout

    # And forward again: the next rebuild takes the port over once more.
    again = inv("rebuild", "--no-sync", env=FAST)
    assert again.returncode == 0, again.stdout + again.stderr
    assert serving()[0] == "blue" and oauth_digests() == keys
    assert lock_is_free()


def test_keys_survive_two_rebuilds_and_a_rollback_byte_for_byte(deployed):
    from rig.sandbox import commit_change

    keys = oauth_digests()
    assert "keys/signing.pem" in keys and "oauth.db" in keys
    for label in ("keys-1", "keys-2"):
        commit_change(f"{label}-{time.time()}")
        result = inv("rebuild", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        assert oauth_digests() == keys
    assert inv("rollback").returncode == 0
    assert oauth_digests() == keys


def test_the_image_holds_the_commit_not_what_the_app_wrote_in_the_checkout(deployed):
    from rig.sandbox import commit_change

    commit = commit_change(f"exact-{time.time()}")
    assert inv("local-sync").returncode == 0
    # The app (or anyone) changes a tracked file and adds one in the checkout on the NAS.
    sh(f"echo 'PLANTED = True' | sudo -u nas tee -a {APP_DIR}/api/store.py >/dev/null; "
       f"echo 'planted' | sudo -u nas tee {APP_DIR}/api/planted.py >/dev/null")
    try:
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        color, served = serving()
        assert served == commit
        inside = sh(f"docker exec loop-api-{color} sh -c 'cat /app/api/store.py; ls /app/api'").stdout
        assert "PLANTED" not in inside and "planted.py" not in inside
        assert inside.startswith(sh(f"git -C {WORKSTATION} show HEAD:api/store.py").stdout.rstrip("\n")[:200])
    finally:
        sh(f"sudo -u nas git -C {APP_DIR} checkout -- api/store.py; rm -f {APP_DIR}/api/planted.py")


def test_an_app_without_a_healthcheck_deploys_with_the_one_loopctl_supplies(deployed):
    commit = commit_compose("no healthcheck", lambda m: m["services"]["loop-api"].pop("healthcheck"))
    try:
        result = inv("rebuild", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "loop-api defines no healthcheck: loopctl checks HTTP /health on port 8081 every second" in result.stdout
        color, served = serving()
        assert served == commit
        test = sh(f"docker inspect -f '{{{{json .Config.Healthcheck.Test}}}}' loop-api-{color}").stdout
        assert "CMD-SHELL" in test and "/health" in test
    finally:
        revert_last_commit()


@pytest.mark.parametrize("label, change, env, message", [
    ("a missing service", None, {"API_SERVICE": "loop-nope"},
     "inv rebuild: error: API_SERVICE 'loop-nope' is not a service in docker-compose.yml (it has: loop-api, loop-auth)"),
    ("depends on a missing service", lambda m: m["services"]["loop-api"].update(depends_on=["loop-db"]), {},
     "inv rebuild: error: the app's compose file docker-compose.yml is invalid: "),
    ("host network", lambda m: m["services"]["loop-api"].update(network_mode="host"), {},
     "inv rebuild: error: service loop-api uses network_mode: host"),
    ("two services on 8082", lambda m: m["services"]["loop-auth"]["ports"].append("127.0.0.1:8082:9999"), {},
     "inv rebuild: error: "),
])
def test_bad_compose_input_is_one_line_and_changes_nothing(deployed, label, change, env, message):
    before = serving(), sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout, sh("docker ps -q | sort").stdout
    if change:
        commit_compose(label, change)
    if env:
        assert inv("setup", env=env).returncode == 0
    try:
        result = inv("rebuild", env={**FAST, **env})
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
        assert (serving(), sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout, sh("docker ps -q | sort").stdout) == before
    finally:
        if change:
            revert_last_commit()
        restored = inv("setup") if env else None  # checked below, so a failure above stays the one reported
    assert restored is None or restored.returncode == 0, restored.stdout + restored.stderr


def test_rollback_to_starts_an_old_release_as_it_was_defined(deployed):
    """`--to` uses the release's own stack definition, not today's compose file."""
    from rig.sandbox import commit_change

    old = commit_change(f"defined-{time.time()}")
    assert inv("rebuild", env=FAST).returncode == 0
    commit_compose("new env", lambda m: m["services"]["loop-api"]["environment"].update(NEW_SETTING="yes"))
    try:
        assert inv("rebuild", env=FAST).returncode == 0
        color, _ = serving()
        assert "NEW_SETTING=yes" in sh(f"docker exec loop-api-{color} printenv NEW_SETTING | sed 's/^/NEW_SETTING=/'").stdout
        # One more release so that `old` is not the kept container of the other color.
        assert inv("rebuild", env=FAST).returncode == 0
        result = inv("rollback", "--to", old)
        assert result.returncode == 0, result.stdout + result.stderr
        color, served = serving()
        assert served == old
        assert sh(f"docker exec loop-api-{color} printenv NEW_SETTING", check=False).returncode != 0
    finally:
        revert_last_commit()
        restored = inv("rebuild", env=FAST)  # checked below, so a failure above stays the one reported
    assert restored.returncode == 0, restored.stdout + restored.stderr


@pytest.mark.parametrize("made_by", ["the other compose", "hand"])
def test_a_network_that_already_exists_never_blocks_a_deploy_or_a_rollback(rig, made_by):
    """loop_default made by the other Compose version (its labels differ) or by hand (none)."""
    reset_nas()
    other = "/usr/bin/docker-compose" if COMPOSE == "v2" else V2_CLI
    if made_by == "hand":
        sh("docker network create loop_default >/dev/null")
    else:
        sh(f"cd {APP_DIR} && {other} up --no-start loop-auth 2>&1 && docker rm -f loop-auth >/dev/null")
    labels = sh("docker network inspect -f '{{json .Labels}}' loop_default").stdout
    assert inv("setup").returncode == 0
    first = inv("rebuild", env=FAST)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "level=warning" not in first.stdout + first.stderr, first.stdout + first.stderr
    assert "obsolete" not in first.stdout + first.stderr and "Bake" not in first.stdout + first.stderr
    from rig.sandbox import commit_change

    commit_change(f"network-{time.time()}")
    assert inv("rebuild", env=FAST).returncode == 0
    assert inv("rollback").returncode == 0
    assert sh("docker network inspect -f '{{json .Labels}}' loop_default").stdout == labels
    assert serving()


@pytest.mark.parametrize("squatter, message", [
    ("--name loop-api-green", "container loop-api-green exists but is not this stack's"),
    ("--name squatter -p 127.0.0.1:8082:9", "port 8082 is held by container squatter, not by loop-api"),
])
def test_anything_else_holding_a_name_or_the_port_is_refused_before_anything_changes(rig, squatter, message):
    reset_nas()
    sh(f"docker run -d {squatter} loop-rig-base:bookworm sleep 600 >/dev/null")
    try:
        assert inv("setup").returncode == 0
        before = sh("docker ps -aq | sort").stdout
        result = inv("rebuild", "--no-sync", env=FAST)
        assert result.returncode == 7, result.stdout + result.stderr
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert sh("docker ps -aq | sort").stdout == before
        assert sh(f"cat {LOOPCTL_HOME}/state/releases.tsv", check=False).stdout == ""
    finally:
        sh("docker rm -f loop-api-green squatter >/dev/null 2>&1", check=False)


def test_rebuild_all_on_a_nas_without_keys_yet_backs_up_nothing_and_says_so(deployed):
    kept = "/srv/loop-rig/kept"
    sh(f"rm -rf {kept} && mkdir -p {kept} && cp -a $(docker volume inspect -f '{{{{.Mountpoint}}}}' {OAUTH_VOLUME}) "
       f"{kept}/oauth && find $(docker volume inspect -f '{{{{.Mountpoint}}}}' {OAUTH_VOLUME}) -mindepth 1 -delete")
    result = inv("rebuild-all", "--yes", "--no-sync", env=FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no OAuth keys or database in the volume {OAUTH_VOLUME} yet: nothing to back up" in \
        sh(f"cat $(ls -d {LOOPCTL_HOME}/state/backups/oauth-* | tail -n 1)/EMPTY").stdout
    assert "keys/signing.pem" in oauth_digests()
    assert serving()
